"""The watcher's export for real (issue 44): lora-export in a child process, its output in
the log and a failure reported as its own last error line; a run's checkpoints exported end
to end as they appear, each a program that loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lora_tui.engine import ModelHost
from lora_tui.format import ArtifactError
from lora_tui.watch.export_child import ChildExport
from lora_tui.watch.watcher import Exported, ExportJob, RunWatcher, WatchEvent
from tests.support.artifacts import TinyArtifacts
from tests.support.watched_run import write_checkpoint


def test_a_failed_export_is_lora_exports_error_line_and_its_output_is_logged(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "runs" / "nobel"
    write_checkpoint(run_dir, 200)
    log = tmp_path / "watch.log"
    job = ExportJob(tmp_path / "no-base", tmp_path / "out", "nobel", run_dir)
    with pytest.raises(ArtifactError) as failed:
        ChildExport(log)(job)
    line = f"lora-export: error: {tmp_path / 'no-base'}: no such file or directory"
    assert str(failed.value) == line
    logged = log.read_text()
    assert "-P -m exporter.cli --base" in logged and line in logged
    assert not (tmp_path / "out").exists()


def test_a_runs_checkpoints_are_exported_as_they_appear_and_load(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    run_dir = tmp_path / "runs" / "nobel"
    shutil.copytree(tiny_artifacts.adapters["full"], run_dir / "checkpoint-100")
    events: list[WatchEvent] = []
    watcher = RunWatcher(run_dir, out, tiny_artifacts.base_dir, ChildExport(tmp_path / "log"))
    watcher.start(events.append)
    assert events == []  # nothing exported from the run yet
    for _ in range(2):  # seen twice unchanged: complete
        watcher.poll(events.append)
    shutil.copytree(tiny_artifacts.adapters["full"], run_dir / "checkpoint-200")
    for _ in range(2):
        watcher.poll(events.append)
    exported = [e for e in events if isinstance(e, Exported)]
    steps = [program.step for e in exported for program in e.programs]
    assert steps == [100, 200], events
    host = ModelHost(out / "foundation.ptd")
    for program in (p for e in exported for p in e.programs):
        assert host.load(program.path, program.name).name == program.name
