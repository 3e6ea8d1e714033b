"""``bench`` and ``eval`` over two foundations of one base, fp32 and 8da4w (issue 29): one
run, each adapter named with its quantization, every answer recording its foundation, and
the refusals kept to one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.ui.opening import open_programs
from tests.support.artifacts import TinyArtifacts
from tests.support.checks import assert_one_line_error
from tests.support.pilot import SIZE, send
from tests.support.prompts import write_prompts
from tests.support.real_app import real_foundations_app, wait_for


def lora_tui(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lora_tui.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def both(tiny_artifacts: TinyArtifacts, quantized: Path) -> list[str]:
    """The 'full' adapter at fp32 and at 8da4w, each over its own foundation."""
    fp32 = ["--weights", str(tiny_artifacts.foundation), str(tiny_artifacts.program("full"))]
    return [*fp32, "--weights", str(quantized / "foundation.ptd"), str(quantized / "full.pte")]


def test_bench_measures_one_adapter_over_two_foundations(
    tiny_artifacts: TinyArtifacts, quantized: Path
) -> None:
    done = lora_tui("bench", *both(tiny_artifacts, quantized), "--max-new-tokens", "4", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [f["label"] for f in report["foundations"]] == ["fp32", "8da4w g32"]
    rows = {row["name"]: row for row in report["adapters"]}
    assert list(rows) == ["full · fp32", "full · 8da4w g32"]
    assert rows["full · 8da4w g32"]["quantization"] == "8da4w g32"
    assert rows["full · 8da4w g32"]["foundation"] == str(quantized / "foundation.ptd")
    assert all(row["new_tokens"] > 0 for row in rows.values())


def test_eval_scores_each_quantization_and_records_it(
    tiny_artifacts: TinyArtifacts, quantized: Path, tmp_path: Path
) -> None:
    prompts = write_prompts(
        tmp_path / "prompts.jsonl",
        [{"prompt": "Say something.", "regex": "."}, {"prompt": "Name a fruit.", "regex": "."}],
    )
    out = tmp_path / "results.jsonl"
    args = ["eval", *both(tiny_artifacts, quantized), "--prompts", str(prompts)]
    args += ["--max-new-tokens", "6", "--out", str(out)]
    done = lora_tui(*args)
    assert done.returncode == 0, done.stderr
    assert "By foundation (change against fp32)" in done.stdout
    table = done.stdout[done.stdout.index("By foundation") :]
    assert "full" in table and "8da4w g32" in table, table
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4
    assert {(r["adapter"], r["quantization"]) for r in lines} == {
        ("full · fp32", "fp32"),
        ("full · 8da4w g32", "8da4w g32"),
    }
    assert {Path(r["foundation"]) for r in lines} == {
        tiny_artifacts.foundation,
        quantized / "foundation.ptd",
    }


def test_a_program_over_the_wrong_foundation_is_refused_in_one_line(
    tiny_artifacts: TinyArtifacts, quantized: Path, other_foundation: Path
) -> None:
    """The fp32 program listed under the other base's foundation: bench measures the rest
    and says in one line which program does not fit."""
    args = ["--weights", str(quantized / "foundation.ptd"), str(quantized / "full.pte")]
    args += ["--weights", str(other_foundation / "foundation.ptd")]
    args += [str(other_foundation / "base.pte"), str(tiny_artifacts.program("full"))]
    done = lora_tui("bench", *args, "--max-new-tokens", "2")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(tiny_artifacts.program("full")) in errors[0], errors


def test_a_missing_foundation_among_several_is_one_line(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    args = ["--weights", str(tiny_artifacts.foundation), str(tiny_artifacts.program("full"))]
    args += ["--weights", str(tmp_path / "gone.ptd"), str(tmp_path / "gone.pte")]
    done = lora_tui("bench", *args)
    assert_one_line_error(done, "gone.ptd")


async def test_the_app_runs_each_foundation_on_its_own_engine(
    tiny_artifacts: TinyArtifacts, quantized: Path, tmp_path: Path
) -> None:
    """Two real engine processes behind one client: both panes answer, each names its
    quantization, and the memory panel lists each foundation once."""
    groups = [
        FoundationPrograms(tiny_artifacts.foundation, (tiny_artifacts.program("full"),), "fp32"),
        FoundationPrograms(quantized / "foundation.ptd", (quantized / "full.pte",), "8da4w g32"),
    ]
    app = real_foundations_app(groups, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        names = ["full · fp32", "full · 8da4w g32"]
        await wait_for(pilot, lambda: all(n in app.main.memory_panel.adapters for n in names))
        assert list(app.main.panes) == names
        assert {i.quantization for i in app.main.memory_panel.adapters.values()} == {
            "fp32",
            "8da4w g32",
        }
        assert len(app.main.memory_panel.foundations) == 2
        await send(pilot, "Say something.")
        await wait_for(
            pilot,
            lambda: all(p.conversation.last_reply is not None for p in app.main.panes.values()),
        )
        sample = app.engine.memory()
        assert sample is not None and sample.processes >= 4  # two workers, each with a lane


async def test_a_foundation_opened_from_the_palette_runs_beside_the_first(
    tiny_artifacts: TinyArtifacts, quantized: Path, tmp_path: Path
) -> None:
    """Open the 8da4w foundation while the fp32 one runs: its engine starts, its program
    loads under its quantization's name and answers."""
    group = FoundationPrograms(tiny_artifacts.foundation, (tiny_artifacts.program("full"),))
    app = real_foundations_app([group], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "full" in app.main.memory_panel.adapters)
        await open_programs(
            [quantized / "foundation.ptd", quantized / "full.pte"],
            app.engine,
            app.main.add_program,
            app.notify,
        )
        name = "full · 8da4w g32"
        await wait_for(pilot, lambda: name in app.main.memory_panel.adapters)
        assert app.main.memory_panel.adapters[name].quantization == "8da4w g32"
        await send(pilot, "Say something.")
        await wait_for(
            pilot,
            lambda: all(p.conversation.last_reply is not None for p in app.main.panes.values()),
        )
