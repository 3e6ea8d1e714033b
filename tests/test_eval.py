"""``lora-tui eval``: a prompt set on every program, scored, saved line by line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import EngineError, GenerationSettings, ReplyEnd
from lora_tui.evaluate import EvalReport, EvalResult, PromptCase, load_prompts
from tests.conftest import TinyArtifacts
from tests.test_engine import assert_one_line_error


def lora_tui_eval(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "lora_tui.cli", "eval", *args]


def write_prompts(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


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


def test_eval_scores_every_adapter_and_saves_every_answer(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    prompts = write_prompts(
        tmp_path / "prompts.jsonl",
        [
            {"prompt": "What is the capital of France?", "keywords": ["e"], "group": "easy"},
            {"prompt": "Tell me about ExecuTorch.", "keywords": ["no-such-word-here"]},
            {"prompt": "Say something.", "regex": "."},
            {"prompt": "Unscored."},
        ],
    )
    out = tmp_path / "results" / "run.jsonl"
    programs = [str(tiny_artifacts.program(n)) for n in ("full", "base")]
    done = subprocess.run(
        lora_tui_eval(
            ["--weights", str(tiny_artifacts.foundation), *programs]
            + ["--prompts", str(prompts), "--out", str(out), "--json", "--max-new-tokens", "12"]
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["adapters"] == ["full", "base"]
    results = report["results"]
    assert len(results) == 8
    for result in results:
        case = PromptCase(result["prompt"], result["group"])
        if result["prompt"].startswith("What"):
            case = PromptCase(case.prompt, case.group, keywords=("e",))
        elif result["prompt"].startswith("Tell"):
            assert result["right"] is False
            continue
        elif result["prompt"].startswith("Say"):
            case = PromptCase(case.prompt, case.group, regex=".")
        assert result["right"] == case.is_right(result["answer"]), result
    assert report["scores"]["prompts"]["full"]["scored"] == 2  # Tell and Say, not Unscored
    assert report["scores"]["easy"]["base"]["scored"] == 1

    saved = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["prompt"], r["adapter"]) for r in saved] == [
        (r["prompt"], r["adapter"]) for r in results
    ]
    first = saved[0]
    assert len(first["program_sha256"]) == 64
    assert first["settings"]["max_new_tokens"] == 12 and first["settings"]["temperature"] == 0
    assert {"ttft_s", "decode_tok_s", "answer", "vote"} <= set(first)


def test_eval_killed_midway_leaves_whole_lines(tiny_artifacts: TinyArtifacts, tmp_path: Path):
    prompts = write_prompts(
        tmp_path / "many.jsonl", [{"prompt": f"Count to {n}."} for n in range(40)]
    )
    out = tmp_path / "run.jsonl"
    process = subprocess.Popen(
        lora_tui_eval(
            ["--weights", str(tiny_artifacts.foundation), str(tiny_artifacts.program("full"))]
            + ["--prompts", str(prompts), "--out", str(out), "--max-new-tokens", "48"]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_file() and len(out.read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert 3 <= len(lines) < 40
    assert all(json.loads(line)["adapter"] == "full" for line in lines)


def test_eval_bad_prompt_file_is_one_line(tiny_artifacts: TinyArtifacts, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"keywords": ["x"]}\n')
    done = subprocess.run(
        lora_tui_eval(
            ["--weights", str(tiny_artifacts.foundation), str(tiny_artifacts.program("full"))]
            + ["--prompts", str(prompts)]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(done, "prompts.jsonl:1", "needs a 'prompt'")
