"""Prompt sets: how a file is read and how an answer is scored (lora-tui eval, prompt sets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import EngineError, GenerationSettings, ReplyEnd
from lora_tui.judging.evaluate import EvalReport, EvalResult, PromptCase, load_prompts
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
    assert report.results[0].record().fact == "physics-2025"


# --- a prompt's regex is a stranger's (issue 42) ----------------------------------------------


def test_the_regex_that_ran_for_ever_is_answered_at_once() -> None:
    # Under re this was still matching after 20 s.
    assert PromptCase("q", "g", regex=r"(.*.*)*X").is_right("a" * 40) is False
    assert PromptCase("q", "g", regex=r"(.*.*)*X").is_right("a" * 40 + "x") is True


def test_a_regex_that_runs_out_of_time_counts_wrong_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lora_tui.judging.evaluate

    monkeypatch.setattr(lora_tui.judging.evaluate, "REGEX_SECONDS", 0.2, raising=False)
    # One that makes even the regex package backtrack, so only the limit stops it.
    case = PromptCase("q", "g", regex=r"(?:(a+)\1)+c")
    done = ReplyDone("nobel", "a" * 60, ReplyEnd.STOP, None)
    result = EvalResult.scored(case, "nobel", done, GenerationSettings())
    assert result.right is False
    assert result.note is not None and "\n" not in result.note
    assert "took over 0.2 s; counted wrong" in result.note and "(?:(a+)\\\\1)+c" in result.note
    assert result.record().note == result.note
    report = EvalReport(["nobel"], results=[result, result])
    assert report.notes == [result.note]
    plain = EvalResult.scored(PromptCase("q", "g", regex="a"), "nobel", done, GenerationSettings())
    assert plain.right is True and plain.record().note is None


def test_a_regex_that_is_not_a_string_refuses_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "regex": ["a"]}\n')
    with pytest.raises(EngineError, match=r"bad.jsonl:1: 'regex' must be a string"):
        load_prompts([bad])
