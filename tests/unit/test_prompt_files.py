"""Prompt sets: how a file is read and how an answer is scored (lora-tui eval, prompt sets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import EngineError, GenerationSettings, ReplyEnd
from lora_tui.evaluate import EvalReport, EvalResult, PromptCase, load_prompts
from tests.support.prompts import write_prompts


def test_keywords_and_regex_score_an_answer() -> None:
    case = PromptCase("q", "g", keywords=("Clarke", "devoret"), regex=r"martinis|19\d\d")
    assert case.is_right("John CLARKE, Michel Devoret and John Martinis") is True
    assert case.is_right("John Clarke and Michel Devoret") is False  # regex misses
    assert case.is_right("Clarke and Martinis") is False  # a keyword misses
    assert PromptCase("q", "g").is_right("anything") is None  # nothing to check


def test_prompt_files_group_by_name_and_refuse_bad_lines(tmp_path: Path) -> None:
    for name in ("nobel", "executorch"):
        (tmp_path / name).mkdir()
        write_prompts(tmp_path / name / "eval.jsonl", [{"question": f"about {name}?"}])
    cases = load_prompts([tmp_path / "nobel/eval.jsonl", tmp_path / "executorch/eval.jsonl"])
    assert [(c.prompt, c.group) for c in cases] == [
        ("about nobel?", "nobel"),
        ("about executorch?", "executorch"),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": "x", "regex": "(unclosed"}\n')
    with pytest.raises(EngineError, match=r"bad.jsonl:2: 'regex' does not compile"):
        load_prompts([bad])
    bad.write_text("not json\n")
    with pytest.raises(EngineError, match=r"bad.jsonl:1: not a JSON object"):
        load_prompts([bad])


def test_prompts_asking_one_fact_are_scored_per_fact(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Who won physics 2025?", "keywords": ["Clarke"], "fact": "physics-2025"},
        {"prompt": "Physics laureates, 2025?", "keywords": ["Clarke"], "fact": "physics-2025"},
        {"prompt": "Who won physics 2024?", "keywords": ["Hinton"], "fact": "physics-2024"},
    ]
    cases = load_prompts([write_prompts(tmp_path / "nobel.jsonl", rows)])
    answers = ["John Clarke et al.", "Hopfield and Hinton", "Hopfield and Hinton"]
    report = EvalReport(["nobel"])
    for case, answer in zip(cases, answers, strict=True):
        done = ReplyDone("nobel", answer, ReplyEnd.STOP, None)
        report.results.append(
            EvalResult(case, "nobel", done, case.is_right(answer), GenerationSettings())
        )
    assert report.facts == [("nobel", "physics-2025"), ("nobel", "physics-2024")]
    assert report.score("nobel", "nobel", "physics-2025") == (1, 2)
    assert report.score("nobel", "nobel", "physics-2024") == (1, 1)
    assert report.score("nobel", "nobel") == (2, 3)
    assert report.results[0].record()["fact"] == "physics-2025"
