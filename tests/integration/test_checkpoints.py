"""A training run's checkpoints (issue 44): lora-export makes one program per complete
``checkpoint-N/``, its step in the manifest, each filled into one template, and a run
exported again builds only its new checkpoints, and a watch as training completes them;
eval scores them by step."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exporter import cli
from exporter.pipeline import ExportRequest, ExportResult, run_export, watch_export
from lora_tui.format import ArtifactError, Manifest
from tests.support.artifacts import ALL_TARGETS, MAX_CONTEXT, TinyArtifacts
from tests.support.programs import chat_prompt, peft_greedy, program_greedy
from tests.support.prompts import write_prompts
from tests.support.tiny import build_adapter


def test_a_run_s_checkpoints_export_as_one_program_each(
    tiny_artifacts: TinyArtifacts,
    tiny_base: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)  # its template: every checkpoint is a fill
    run = tmp_path / "runs" / "nobel"
    shutil.copytree(tiny_artifacts.adapters["full"], run / "checkpoint-100")
    later = build_adapter(
        tiny_base, run / "checkpoint-200", r=8, alpha=16, targets=ALL_TARGETS, seed=8
    )
    (run / "checkpoint-300").mkdir()  # training has begun to write it
    shutil.copy(later / "adapter_config.json", run / "checkpoint-300")

    capfd.readouterr()
    args = ["--base", str(tiny_base), "--adapter", f"nobel={run}", "--out", str(out)]
    code = cli.main([*args, "--max-context", str(MAX_CONTEXT)])
    output = capfd.readouterr()
    printed = output.out + output.err
    assert code == 0, printed
    assert "note: nobel: checkpoint-300 skipped (no adapter_model.safetensors yet)" in printed
    assert "Traceback" not in printed

    manifest = Manifest.read(out)
    steps = {name: entry.step for name, entry in manifest.programs.items()}
    assert steps == {
        "full": None,
        "partial": None,
        "base": None,
        "nobel-step100": 100,
        "nobel-step200": 200,
    }
    assert manifest.programs["nobel-step200"].checkpoint_of("nobel-step200") == ("nobel", 200)
    assert manifest.programs["nobel-step200"].source == str(run / "checkpoint-200")
    # The same adapter filled into the same template is the same program, byte for byte.
    assert (out / "nobel-step100.pte").read_bytes() == (out / "full.pte").read_bytes()
    prompt = chat_prompt(tiny_base, "Hello")
    want, _ = peft_greedy(tiny_base, later, prompt, 8)
    got, _ = program_greedy(out / "nobel-step200.pte", out / "foundation.ptd", prompt, 8)
    assert got == want

    # Training goes on: exported again, only the checkpoint finished since is built.
    shutil.copy(later / "adapter_model.safetensors", run / "checkpoint-300")
    again = run_export(ExportRequest(tiny_base, [("nobel", run)], out, max_context=MAX_CONTEXT))
    assert again.built == ["nobel-step300"] and again.notes == []
    assert not [phase for phase in again.phase_seconds if phase.startswith("export")]
    assert Manifest.read(out).programs["nobel-step300"].step == 300
    assert (out / "nobel-step300.pte").read_bytes() == (out / "nobel-step200.pte").read_bytes()


def test_a_folder_with_neither_adapter_nor_checkpoints_is_one_line(
    tiny_base: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "runs" / "nobel"
    empty.mkdir(parents=True)
    capfd.readouterr()
    code = cli.main(
        ["--base", str(tiny_base), "--adapter", str(empty), "--out", str(tmp_path / "out")]
    )
    output = capfd.readouterr()
    lines = [line for line in (output.out + output.err).splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1, lines
    assert lines[0].startswith("lora-export: error:") and "checkpoint-N" in lines[0]
    assert not (tmp_path / "out").exists()


def test_eval_scores_a_run_s_checkpoints_by_step(
    tiny_artifacts: TinyArtifacts, tiny_base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    run = tmp_path / "runs" / "nobel"
    shutil.copytree(tiny_artifacts.adapters["full"], run / "checkpoint-20")
    shutil.copytree(tiny_artifacts.adapters["partial"], run / "checkpoint-10")
    run_export(ExportRequest(tiny_base, [("nobel", run)], out, max_context=MAX_CONTEXT))
    prompts = write_prompts(
        tmp_path / "prompts.jsonl",
        [
            {"prompt": "Say something.", "regex": ".", "group": "any"},
            {"prompt": "Name a capital.", "keywords": ["no-such-word-here"], "group": "none"},
        ],
    )
    # The run's folder stands for its checkpoints' programs, by step.
    args = ["--weights", str(out / "foundation.ptd"), str(run), "--prompts", str(prompts)]
    args += ["--max-new-tokens", "4"]
    as_json = subprocess.run(
        lora_tui_eval([*args, "--json"]), capture_output=True, text=True, timeout=300
    )
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["adapters"] == ["nobel-step10", "nobel-step20"]
    right = {
        name: sum(r["right"] for r in report["results"] if r["adapter"] == name)
        for name in report["adapters"]
    }
    assert report["by_step"] == {
        "nobel": [[10, right["nobel-step10"], 2], [20, right["nobel-step20"], 2]]
    }

    shown = subprocess.run(
        lora_tui_eval(args), capture_output=True, text=True, timeout=300, env=plain_env()
    )
    assert shown.returncode == 0, shown.stderr
    assert "Scores by step" in shown.stdout and "Answered right by step (%)" in shown.stdout
    assert "\x1b" not in shown.stdout  # not a terminal: plotext's colours are dropped
    by_step = shown.stdout[shown.stdout.index("Scores by step") :]
    assert by_step.index(" 10 ") < by_step.index(" 20 ")


def lora_tui_eval(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "lora_tui.cli", "eval", *args]


def plain_env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "100", "TERM": "dumb"}


def test_a_watch_exports_each_checkpoint_as_training_completes_it(
    tiny_artifacts: TinyArtifacts, tiny_base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    run = tmp_path / "runs" / "nobel"
    shutil.copytree(tiny_artifacts.adapters["full"], run / "checkpoint-100")
    results: queue.Queue[ExportResult] = queue.Queue()
    errors: list[ArtifactError] = []
    stop = threading.Event()
    request = ExportRequest(tiny_base, [("nobel", run)], out, max_context=MAX_CONTEXT)
    watch = threading.Thread(
        target=watch_export, args=(request, results.put, errors.append, stop, 0.1)
    )
    watch.start()
    try:
        first = results.get(timeout=120)
        assert first.built == ["nobel-step100"] and "read base" in first.phase_seconds
        # Training writes the next checkpoint: its config first, its weights later.
        (run / "checkpoint-200").mkdir()
        shutil.copy(
            tiny_artifacts.adapters["partial"] / "adapter_config.json", run / "checkpoint-200"
        )
        waiting = results.get(timeout=60)
        assert waiting.built == [] and waiting.notes == [
            "nobel: checkpoint-200 skipped (no adapter_model.safetensors yet)"
        ]
        weights = tiny_artifacts.adapters["partial"] / "adapter_model.safetensors"
        shutil.copy(weights, run / "checkpoint-200")
        second = results.get(timeout=60)
        assert second.built == ["nobel-step200"] and second.notes == []
        assert "read base" not in second.phase_seconds  # read once, for the whole watch
        assert not [phase for phase in second.phase_seconds if phase.startswith("export")]
        # Nothing changes: nothing is exported again.
        time.sleep(0.5)
        assert results.empty()
    finally:
        stop.set()
        watch.join(timeout=60)
    assert not watch.is_alive() and errors == []
    steps = {name: entry.step for name, entry in Manifest.read(out).programs.items()}
    assert steps["nobel-step100"] == 100 and steps["nobel-step200"] == 200
    assert (out / "nobel-step200.pte").read_bytes() == (out / "partial.pte").read_bytes()


def test_lora_export_watch_prints_each_new_checkpoint_and_stops_on_ctrl_c(
    tiny_artifacts: TinyArtifacts, tiny_base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    run = tmp_path / "runs" / "nobel"
    shutil.copytree(tiny_artifacts.adapters["full"], run / "checkpoint-100")
    args = ["--base", str(tiny_base), "--adapter", f"nobel={run}", "--out", str(out)]
    command = [sys.executable, "-m", "exporter.cli", *args, "--max-context", str(MAX_CONTEXT)]
    watching = subprocess.Popen(
        [*command, "--watch"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in watching.stdout], daemon=True
    ).start()

    def wait_for(text: str, seconds: float) -> list[str]:
        seen, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
            if text in seen[-1]:
                return seen
        raise AssertionError(f"no {text!r} in {seen}")

    try:
        wait_for("watching for new checkpoints", 120)
        shutil.copytree(tiny_artifacts.adapters["partial"], run / "checkpoint-200")
        wait_for("exported nobel-step200.pte", 60)
        watching.send_signal(signal.SIGINT)
        assert watching.wait(timeout=60) == 0
        rest = wait_for("stopped watching", 10)
        assert not any("Traceback" in line for line in rest)
    finally:
        watching.kill()
    assert Manifest.read(out).programs["nobel-step200"].step == 200
