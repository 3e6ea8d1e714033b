"""The watcher of a training run (issue 44): which checkpoints are complete, when an export
runs, and which programs it reports, with lora-export faked (``tests/support/watched_run``)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from lora_tui.cli.main import main
from lora_tui.cli.options import CompareOptions, Watch
from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.format import ArtifactError, Manifest
from lora_tui.format.checkpoints import checkpoints as checkpoint_folders
from lora_tui.watch.checkpoints import Completeness
from lora_tui.watch.export_child import export_command
from lora_tui.watch.watcher import (
    Exported,
    ExportFailed,
    Exporting,
    ExportJob,
    RunWatcher,
    WatchEvent,
    run_programs,
    watch_base,
)
from tests.support.watched_run import (
    FakeExport,
    checkpoint_entry,
    export_folder,
    write_checkpoint,
)


def steps(run_dir: Path, completeness: Completeness) -> list[int]:
    return [c.step for c in completeness.poll(run_dir)]


def test_a_checkpoint_is_complete_once_both_files_stay_the_same_over_two_polls(
    tmp_path: Path,
) -> None:
    completeness = Completeness()
    write_checkpoint(tmp_path, 200)
    assert steps(tmp_path, completeness) == []  # seen once: it may still be written
    assert steps(tmp_path, completeness) == [200]
    assert steps(tmp_path, completeness) == [200]


def test_a_checkpoint_missing_a_file_or_still_growing_is_not_taken(tmp_path: Path) -> None:
    completeness = Completeness()
    whole = write_checkpoint(tmp_path / "whole", 400) / "adapter_model.safetensors"
    folder = write_checkpoint(tmp_path, 400, files=("adapter_config.json",))
    assert steps(tmp_path, completeness) == []
    assert steps(tmp_path, completeness) == []
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(b"")  # created, nothing written yet
    assert steps(tmp_path, completeness) == []
    assert steps(tmp_path, completeness) == []
    data = whole.read_bytes()
    weights.write_bytes(data[:-4])  # short of what its header says, however long it stays
    assert steps(tmp_path, completeness) == []
    assert steps(tmp_path, completeness) == []
    with weights.open("ab") as more:
        more.write(data[-4:])  # whole now, but changed since the last poll
    assert steps(tmp_path, completeness) == []
    assert steps(tmp_path, completeness) == [400]


def test_only_checkpoint_folders_count_in_order_of_step(tmp_path: Path) -> None:
    for step in (1000, 200, 30):
        write_checkpoint(tmp_path, step)
    write_checkpoint(tmp_path, 50).rename(tmp_path / "tmp-checkpoint-50")  # mid-save
    (tmp_path / "checkpoint-60").write_text("a file, not a folder")
    (tmp_path / "runs").mkdir()
    assert [c.step for c in checkpoint_folders(tmp_path)] == [30, 200, 1000]
    assert checkpoint_folders(tmp_path / "gone") == []


def make_watcher(tmp_path: Path, export: FakeExport) -> tuple[RunWatcher, list[WatchEvent]]:
    run_dir = tmp_path / "runs" / "nobel"
    run_dir.mkdir(parents=True)
    weights = export_folder(tmp_path / "out", tmp_path / "base")
    watcher = RunWatcher(run_dir, weights.parent, tmp_path / "base", export, interval_s=0)
    return watcher, []


def test_a_new_complete_checkpoint_is_exported_and_its_program_reported(tmp_path: Path) -> None:
    export = FakeExport()
    watcher, seen = make_watcher(tmp_path, export)
    watcher.start(seen.append)
    assert seen == []  # nothing exported from the run yet
    write_checkpoint(watcher.run_dir, 200)
    watcher.poll(seen.append)
    assert export.jobs == []  # not yet known to be complete
    watcher.poll(seen.append)
    out = tmp_path / "out"
    assert export.jobs == [ExportJob(tmp_path / "base", out, "nobel", watcher.run_dir)]
    assert seen[0] == Exporting("nobel", ("checkpoint-200",))
    assert isinstance(seen[1], Exported) and seen[1].run == "nobel"
    assert [(p.name, p.path, p.step) for p in seen[1].programs] == [
        ("nobel-step200", out / "nobel-step200.pte", 200)
    ]
    watcher.poll(seen.append)
    watcher.poll(seen.append)
    assert len(export.jobs) == 1 and len(seen) == 2  # nothing new: no export

    for step in (600, 400):  # two at once: one export, reported in order of step
        write_checkpoint(watcher.run_dir, step)
    watcher.poll(seen.append)
    watcher.poll(seen.append)
    assert len(export.jobs) == 2
    assert seen[2] == Exporting("nobel", ("checkpoint-400", "checkpoint-600"))
    assert [p.step for p in seen[3].programs] == [400, 600]


def test_a_failed_export_is_one_line_and_the_watch_goes_on(tmp_path: Path) -> None:
    export = FakeExport(fail="lora-export: error: runs/nobel/checkpoint-200: rank 0")
    watcher, seen = make_watcher(tmp_path, export)
    write_checkpoint(watcher.run_dir, 200)
    for _ in range(4):
        watcher.poll(seen.append)
    assert seen == [
        Exporting("nobel", ("checkpoint-200",)),
        ExportFailed("lora-export: error: runs/nobel/checkpoint-200: rank 0"),
    ]
    assert len(export.jobs) == 1  # not tried again and again
    export.fail = None
    write_checkpoint(watcher.run_dir, 400)
    watcher.poll(seen.append)
    watcher.poll(seen.append)
    assert seen[2] == Exporting("nobel", ("checkpoint-400",))
    assert [p.step for p in seen[3].programs] == [200, 400]  # the failed one made too


def test_at_start_the_runs_programs_exported_already_are_reported(tmp_path: Path) -> None:
    run_dir, out = tmp_path / "runs" / "nobel", tmp_path / "out"
    old = [write_checkpoint(run_dir, step) for step in (400, 200)]
    other = write_checkpoint(tmp_path / "runs" / "other", 200)
    programs = {
        "late": checkpoint_entry(old[0], "late.pte", None),  # its step from its folder's name
        "early": checkpoint_entry(old[1], "early.pte", 200),
        "other-step200": checkpoint_entry(other, "other-step200.pte", 200),
        "nobel": checkpoint_entry(tmp_path / "adapters" / "nobel", "nobel.pte", None),
    }
    weights = export_folder(out, tmp_path / "base", programs)
    export = FakeExport()
    watcher = RunWatcher(run_dir, weights.parent, tmp_path / "base", export, interval_s=0)
    seen: list[WatchEvent] = []
    watcher.start(seen.append)
    assert [(p.name, p.step) for p in seen[0].programs] == [("early", 200), ("late", 400)]
    watcher.poll(seen.append)
    watcher.poll(seen.append)
    assert export.jobs == [] and len(seen) == 1  # both exported already


def test_run_programs_of_a_folder_without_a_manifest_are_none(tmp_path: Path) -> None:
    assert run_programs(tmp_path, tmp_path / "runs" / "nobel") == []


def test_run_until_stopped(tmp_path: Path) -> None:
    export = FakeExport()
    watcher, seen = make_watcher(tmp_path, export)
    write_checkpoint(watcher.run_dir, 200)

    def stop_once_reported(event: WatchEvent) -> None:
        seen.append(event)
        if isinstance(event, Exported):
            watcher.stop()

    watcher.run(stop_once_reported)  # returns: stopped
    assert [type(e) for e in seen] == [Exporting, Exported]


def test_the_base_is_the_manifests_if_it_is_there_else_watch_base(tmp_path: Path) -> None:
    base = tmp_path / "base"
    weights = export_folder(tmp_path / "out", base)
    with pytest.raises(ArtifactError, match=r"its base .*base is not here; pass --watch-base"):
        watch_base(weights.parent, None)
    base.mkdir()
    assert watch_base(weights.parent, None) == base
    given = tmp_path / "other-base"
    with pytest.raises(ArtifactError, match="--watch-base .*other-base: not found"):
        watch_base(weights.parent, given)
    given.mkdir()
    assert watch_base(weights.parent, given) == given
    with pytest.raises(ArtifactError, match="manifest.json: missing .*; pass --watch-base DIR"):
        watch_base(tmp_path, None)


def test_the_export_is_lora_export_in_a_fresh_safe_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # paths as given, relative to here: the child gets them whole
    job = ExportJob(Path("base"), Path("out"), "nobel", Path("runs/nobel"))
    assert export_command(job) == [
        sys.executable,
        "-P",
        "-m",
        "exporter.cli",
        "--base",
        str(tmp_path / "base"),
        "--out",
        str(tmp_path / "out"),
        "--adapter",
        f"nobel={tmp_path / 'runs' / 'nobel'}",
    ]
    # Into a folder lora-export wrote: with the folder's context length and quantization,
    # which lora-export refuses to change.
    export_folder(tmp_path / "out", tmp_path / "base")
    manifest = Manifest.read(tmp_path / "out")
    assert export_command(job)[-4:] == [
        "--max-context",
        str(manifest.max_context),
        "--quantize",
        manifest.quantized.mode,
    ]


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[CompareOptions]:
    """compare's code replaced by one that notes the options it was given."""
    calls: list[CompareOptions] = []
    module = types.ModuleType("lora_tui.cli.compare")
    module.compare_main = calls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr("lora_tui.engine.threads.hold_openmp_to_one_thread", lambda: None)
    return calls


def test_watch_takes_a_run_folder_and_the_base_of_the_weights_folder(
    tmp_path: Path, compared: list[CompareOptions]
) -> None:
    (base := tmp_path / "base").mkdir()
    weights = export_folder(tmp_path / "out", base)
    (run_dir := tmp_path / "runs" / "nobel").mkdir(parents=True)
    main(["--weights", str(weights), "--watch", str(run_dir)])  # no program needed
    (options,) = compared
    assert options.watch == Watch(run_dir, base)
    assert options.programs.foundations == (FoundationPrograms(weights, ()),)


@pytest.mark.parametrize(
    ("make", "extra", "error"),
    [
        (lambda run: None, [], "--watch {run}: not found (a training run's output folder)"),
        (Path.touch, [], "--watch {run}: not a folder (a training run's output folder)"),
        (Path.mkdir, [], "{out}/manifest.json: its base {base} is not here; pass --watch-base DIR"),
        (Path.mkdir, ["--watch-base", "{base}"], "--watch-base {base}: not found"),
    ],
)
def test_a_bad_watch_is_one_line_and_exit_2(
    tmp_path: Path,
    compared: list[CompareOptions],
    capsys: pytest.CaptureFixture[str],
    make,
    extra,
    error: str,
) -> None:
    names = {"run": tmp_path / "nobel", "out": tmp_path / "out", "base": tmp_path / "base"}
    weights = export_folder(names["out"], names["base"])
    make(names["run"])
    words = [w.format(**names) for w in extra]
    with pytest.raises(SystemExit) as stop:
        main(["--weights", str(weights), "--watch", str(names["run"]), *words])
    assert stop.value.code == 2 and compared == []
    message = error.format(**names).replace(" DIR", " DIR, the base to export from")
    assert capsys.readouterr().err == f"lora-tui compare: error: {message}\n"


def test_without_watch_the_weights_still_need_programs(
    tmp_path: Path, compared: list[CompareOptions], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--weights", "w.ptd"])
    assert "--weights w.ptd: no programs over it" in capsys.readouterr().err
