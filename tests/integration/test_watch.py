"""The watcher's export for real (issue 44): lora-export in a child process, its output in
the log and a failure reported as its own last error line. (A run's checkpoints exported
end to end needs lora-export's --adapter NAME=RUN_DIR of checkpoint folders.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_tui.format import ArtifactError
from lora_tui.watch.export_child import ChildExport
from lora_tui.watch.watcher import ExportJob
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
