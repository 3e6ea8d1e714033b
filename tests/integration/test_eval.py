"""``lora-tui eval``: a prompt set on every program, scored, saved line by line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lora_tui.judging.evaluate import PromptCase
from tests.support.artifacts import TinyArtifacts
from tests.support.checks import assert_one_line_error
from tests.support.prompts import write_prompts


def lora_tui_eval(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "lora_tui.cli", "eval", *args]


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
    # Issue 44: with the base open, every answer is scored under it; the base's own are
    # its greedy answers, the trained adapter's are not all of them.
    from_base = report["from_base"]
    assert from_base["base"]["same"] == from_base["base"]["scored"] == 4
    assert from_base["full"]["scored"] == 4 and from_base["full"]["same"] < 4
    assert from_base["full"]["mean_logprob"] < from_base["base"]["mean_logprob"] <= 0
    assert all(r["same_as_base"] for r in results if r["adapter"] == "base")
    assert all(isinstance(r["base_logprob"], float) for r in results)

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


def test_a_killed_eval_resumes_and_answers_nothing_twice(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    """Killed midway, with half a line written: --resume drops the half line, asks only
    what is missing, and ends with one line per (prompt, program, settings), the answers
    an uninterrupted run gives."""
    prompts = write_prompts(tmp_path / "p.jsonl", [{"prompt": f"Count to {n}."} for n in range(12)])
    programs = [str(tiny_artifacts.program(n)) for n in ("full", "base")]
    args = ["--weights", str(tiny_artifacts.foundation), *programs, "--prompts", str(prompts)]
    args += ["--max-new-tokens", "16"]
    reference = tmp_path / "reference.jsonl"
    subprocess.run(lora_tui_eval([*args, "--out", str(reference)]), check=True, timeout=600)

    out = tmp_path / "run.jsonl"
    process = subprocess.Popen(
        lora_tui_eval([*args, "--out", str(out)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if out.is_file() and len(out.read_bytes().splitlines()) >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    kept = len(out.read_bytes().splitlines())
    assert 5 <= kept < 24
    with out.open("a") as file:
        file.write('{"prompt": "Count to')  # what a kill mid-write leaves

    done = subprocess.run(
        lora_tui_eval([*args, "--out", str(out), "--resume", "--json"]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 24
    keys = {(r["prompt"], r["program_sha256"], json.dumps(r["settings"])) for r in lines}
    assert len(keys) == 24
    expected = {(r["prompt"], r["adapter"]): r["answer"] for r in map(json.loads, reference.open())}
    assert {(r["prompt"], r["adapter"]): r["answer"] for r in lines} == expected
    assert len(json.loads(done.stdout)["results"]) == 24  # the report covers the whole set


# --- nothing lost (issue 42) -----------------------------------------------------------------


def copied_artifacts(tiny_artifacts: TinyArtifacts, folder: Path) -> Path:
    """The foundation, one program and the tokenizer, copied: a run that ignored the checks
    would damage the copies, never the session's fixtures."""
    folder.mkdir()
    for name in ("foundation.ptd", "full.pte", "manifest.json", "tokenizer.json"):
        shutil.copy2(tiny_artifacts.out / name, folder / name)
    shutil.copy2(tiny_artifacts.out / "tokenizer_config.json", folder / "tokenizer_config.json")
    return folder


def test_eval_out_naming_an_input_is_refused_and_touches_nothing(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    folder = copied_artifacts(tiny_artifacts, tmp_path / "pack")
    prompts = tmp_path / "p.jsonl"
    # Two prompts, no final newline: opening it as results cut the second one off.
    prompts.write_text('{"prompt": "Who won?"}\n{"prompt": "Name a backend."}')
    os.link(prompts, tmp_path / "same-prompts.jsonl")
    args = ["--weights", str(folder / "foundation.ptd"), str(folder / "full.pte")]
    args += ["--prompts", str(prompts), "--max-new-tokens", "4"]
    before = {p: p.read_bytes() for p in [prompts, *folder.iterdir()]}
    targets = [prompts, tmp_path / "same-prompts.jsonl"]
    targets += [folder / n for n in ("full.pte", "foundation.ptd", "tokenizer.json")]
    for out in targets:
        done = subprocess.run(
            lora_tui_eval([*args, "--out", str(out)]), capture_output=True, text=True, timeout=120
        )
        assert_one_line_error(done, "an input of this run")
    assert {p: p.read_bytes() for p in before} == before


def test_eval_out_naming_a_file_that_is_not_results_is_refused(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", [{"prompt": "Who won?"}])
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"todo": "compare the adapters"}\n{"todo": "write it up"}')
    args = ["--weights", str(tiny_artifacts.foundation), str(tiny_artifacts.program("full"))]
    args += ["--prompts", str(prompts), "--out", str(notes)]
    done = subprocess.run(lora_tui_eval(args), capture_output=True, text=True, timeout=120)
    assert_one_line_error(done, "notes.jsonl", "not a lora-tui results file")
    assert notes.read_text() == '{"todo": "compare the adapters"}\n{"todo": "write it up"}'


def test_resume_retries_saved_errors_and_survives_a_damaged_line(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", [{"prompt": f"Count to {n}."} for n in range(3)])
    args = ["--weights", str(tiny_artifacts.foundation), str(tiny_artifacts.program("full"))]
    args += ["--prompts", str(prompts), "--max-new-tokens", "8"]
    out = tmp_path / "run.jsonl"
    subprocess.run(lora_tui_eval([*args, "--out", str(out)]), check=True, timeout=600)
    first, failed, last = out.read_text(encoding="utf-8").splitlines()
    failed = json.dumps({**json.loads(failed), "end": "error", "answer": ""})
    # An error saved for the second prompt, and a line glued onto half of another.
    out.write_text(f'{first}\n{failed}\n{{"prompt": "Count to{last}\n', encoding="utf-8")

    done = subprocess.run(
        lora_tui_eval([*args, "--out", str(out), "--resume", "--json"]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    warnings = [ln for ln in done.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "skipped 1 line" in warnings[0], done.stderr
    lines = [json.loads(ln) for ln in out.read_text(encoding="utf-8").splitlines()[3:]]
    # The error asked again, and the answer the damaged line held; the first one kept.
    assert [r["prompt"] for r in lines] == ["Count to 1.", "Count to 2."]
    assert all(r["end"] != "error" and len(r["foundation_sha256"]) == 64 for r in lines)
    assert len(json.loads(done.stdout)["results"]) == 3
