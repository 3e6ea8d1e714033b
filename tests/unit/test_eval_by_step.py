"""eval over a training run's checkpoints (issue 44): the programs the manifest lists with a
step are scored by step (a table, a plotext chart, ``by_step`` in the JSON), and a folder
given as the programs is an export folder's programs or a run's checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from rich.console import Console

from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import GenerationSettings, ReplyEnd
from lora_tui.format import ArtifactError
from lora_tui.judging.evaluate import (
    Answered,
    EvalResult,
    Program,
    PromptCase,
    checkpoint_steps,
    expand_folders,
    report_tables,
    run_eval,
    step_chart,
)
from tests.unit.test_manifest_types import MANIFEST, PROGRAM, write_manifest

SETTINGS = GenerationSettings(temperature=0.0, max_new_tokens=8)
CASES = [
    PromptCase("Who won in 2025?", "nobel", keywords=("Clarke",)),
    PromptCase("Who else?", "nobel", keywords=("Devoret",)),
    PromptCase("Name a backend.", "executorch", regex="XNNPACK"),
    PromptCase("Say hello.", "prompts"),  # not scored: counts in no total
]
# What each program knows: the later the checkpoint, the more.
KNOWS = {
    "nobel-step100": "nothing",
    "nobel-step200": "Clarke",
    "nobel-step300": "Clarke and Devoret on XNNPACK",
    "final": "Clarke and Devoret",
}


class Knowing:
    """A backend whose every answer is what its program knows."""

    def __init__(self, programs: Sequence[Program]) -> None:
        self.programs = list(programs)

    def answer(
        self,
        cases: Sequence[PromptCase],
        wanted: Callable[[int, str], bool],
        settings: GenerationSettings,
        answered: Callable[[Answered], None],
    ) -> None:
        for index, case in enumerate(cases):
            for program in self.programs:
                if wanted(index, program.name):
                    text = KNOWS[program.path.stem]
                    done = ReplyDone(program.name, text, ReplyEnd.STOP, None)
                    result = EvalResult.scored(case, program.name, done, settings)
                    answered(Answered(index, result))


def export_folder(folder: Path, run: Path) -> Path:
    """A lora-export folder's manifest: three checkpoints of run ``nobel`` (exported out of
    step order) and one adapter that is no checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    programs = {
        f"nobel-step{step}": {
            **PROGRAM,
            "file": f"nobel-step{step}.pte",
            "source": str(run / f"checkpoint-{step}"),
            "step": step,
        }
        for step in (300, 100, 200)
    }
    programs["final"] = {**PROGRAM, "file": "final.pte", "source": str(run)}
    write_manifest(folder, {**MANIFEST, "programs": programs})
    for entry in programs.values():
        (folder / entry["file"]).write_bytes(b"program")
    (folder / "foundation.ptd").write_bytes(b"weights")
    return folder


def programs_in(folder: Path, names: Sequence[str], label: str = "") -> list[Program]:
    suffix = f" · {label}" if label else ""
    return [Program(f"{name}{suffix}", folder / f"{name}.pte", label) for name in names]


def test_checkpoints_are_scored_by_step(tmp_path: Path) -> None:
    out = export_folder(tmp_path / "out", tmp_path / "runs" / "nobel")
    names = ["final", "nobel-step300", "nobel-step100", "nobel-step200"]
    report = run_eval(Knowing(programs_in(out, names)), CASES, SETTINGS)
    assert report.steps == {
        "nobel-step300": ("nobel", 300),
        "nobel-step100": ("nobel", 100),
        "nobel-step200": ("nobel", 200),
    }
    assert report.by_step() == {"nobel": [(100, 0, 3), (200, 1, 3), (300, 3, 3)]}
    as_json = json.loads(json.dumps(report.as_json()))
    assert as_json["by_step"] == {"nobel": [[100, 0, 3], [200, 1, 3], [300, 3, 3]]}

    tables = {str(table.title): table for table in report_tables(report)}
    by_step = tables["Scores by step"]
    assert [str(column.header) for column in by_step.columns] == [
        "adapter",
        "step",
        "nobel",
        "executorch",
        "prompts",
        "total",
    ]
    console = Console(width=120, record=True, color_system=None)
    console.print(by_step)
    shown = console.export_text()
    assert "│ nobel   │  200 │   1/2 │        0/1 │     0/0 │  1/3 (33%) │" in shown, shown


def test_no_checkpoint_no_by_step(tmp_path: Path) -> None:
    out = export_folder(tmp_path / "out", tmp_path / "runs" / "nobel")
    report = run_eval(Knowing(programs_in(out, ["final"])), CASES, SETTINGS)
    assert report.steps == {} and report.as_json()["by_step"] == {}
    assert "Scores by step" not in [str(t.title) for t in report_tables(report)]
    assert step_chart(report) is None


def test_programs_with_no_manifest_are_no_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "nobel-step200.pte").write_bytes(b"program")  # export_llm's: no manifest
    assert checkpoint_steps(programs_in(tmp_path, ["nobel-step200"])) == {}
    (tmp_path / "manifest.json").write_text("{damaged")
    assert checkpoint_steps(programs_in(tmp_path, ["nobel-step200"])) == {}


def test_checkpoints_over_several_foundations_are_runs_apart(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "nobel"
    fp32, q4 = export_folder(tmp_path / "fp32", run), export_folder(tmp_path / "q4", run)
    programs = [
        *programs_in(fp32, ["nobel-step100", "nobel-step200"], "fp32"),
        *programs_in(q4, ["nobel-step100"], "8da4w g32"),
    ]
    report = run_eval(Knowing(programs), CASES, SETTINGS)
    assert report.by_step() == {
        "nobel · fp32": [(100, 0, 3), (200, 1, 3)],
        "nobel · 8da4w g32": [(100, 0, 3)],
    }


def test_the_chart_is_plotext_s_with_every_run_and_no_escape_from_a_name(tmp_path: Path) -> None:
    out = export_folder(tmp_path / "out", tmp_path / "runs" / "nobel")
    names = ["nobel-step100", "nobel-step200", "nobel-step300"]
    report = run_eval(Knowing(programs_in(out, names)), CASES, SETTINGS)
    report.steps["nobel-step300"] = ("bad\x1b[2Jname", 300)  # a stranger's manifest
    chart = step_chart(report, width=70, height=14)
    assert chart is not None
    text = chart.plain
    assert "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 14 and max(len(line) for line in lines) <= 70
    assert "Answered right by step (%)" in text and "step" in lines[-1]
    assert "nobel" in text and "bad[2Jname" not in text and "badname" in text
    assert "100" in text and "200" in text  # the steps on the x axis
    assert any(style for _, style in ((s.start, s.style) for s in chart.spans))  # colours kept


def test_an_export_folder_as_programs_is_every_program_it_lists(tmp_path: Path) -> None:
    out = export_folder(tmp_path / "out", tmp_path / "runs" / "nobel")
    group = FoundationPrograms(out / "foundation.ptd", (out,))
    assert [p.name for p in expand_folders(group).programs] == [
        "nobel-step300.pte",
        "nobel-step100.pte",
        "nobel-step200.pte",
        "final.pte",
    ]


def test_a_run_folder_as_programs_is_its_checkpoints_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative source (a manifest from before absolute ones)
    out = export_folder(tmp_path / "out", Path("runs") / "nobel")
    run = tmp_path / "runs" / "nobel"
    run.mkdir(parents=True)
    group = FoundationPrograms(out / "foundation.ptd", (out / "final.pte", run))
    assert [p.name for p in expand_folders(group).programs] == [
        "final.pte",
        "nobel-step100.pte",
        "nobel-step200.pte",
        "nobel-step300.pte",
    ]
    other = tmp_path / "runs" / "other"
    other.mkdir()
    with pytest.raises(ArtifactError, match="no program over .* was exported from its checkp"):
        expand_folders(FoundationPrograms(out / "foundation.ptd", (other,)))
    untouched = FoundationPrograms(out / "foundation.ptd", (out / "final.pte",))
    assert expand_folders(untouched) is untouched
