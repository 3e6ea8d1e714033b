"""lora-export run for the watcher, as the project starts its children: a fresh interpreter
with the safe path (``-P``), killed with the app however it ends (``lifetime``), its output
(progress, native logs, errors) in the app's log and never over the UI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from lora_tui.common.lifetime import dying_with_us, start_child
from lora_tui.common.safe_path import SAFE_PATH_FLAG
from lora_tui.format import MANIFEST_FILE, ArtifactError, Manifest
from lora_tui.watch.watcher import ExportJob

ERROR_MARK = "error:"  # what print_error puts in every failure line: "lora-export: error: ..."


def export_command(job: ExportJob) -> list[str]:
    """lora-export into the folder with the folder's own settings (its context length and
    quantization, from its manifest): lora-export refuses a folder built with others."""
    settings = []
    if (job.out / MANIFEST_FILE).is_file():  # else lora-export's defaults, or its error
        manifest = Manifest.read(job.out)
        quantized = manifest.quantized
        settings = ["--max-context", str(manifest.max_context), "--quantize", quantized.mode]
        if quantized.group_size is not None:
            settings += ["--group-size", str(quantized.group_size)]
    return [
        sys.executable,
        SAFE_PATH_FLAG,  # the exporter from the environment, never from the working folder
        "-m",
        "exporter.cli",
        "--base",
        str(job.base.resolve()),
        "--out",
        str(job.out.resolve()),
        "--adapter",
        f"{job.name}={job.run_dir.resolve()}",
        *settings,
    ]


class ChildExport:
    """The watcher's ``Export``: one lora-export child at a time, its output appended to
    ``log_path``. A failure raises ``ArtifactError`` with the child's last error line."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def __call__(self, job: ExportJob) -> None:
        command = export_command(job)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            with self._lock:
                if self._stopped:
                    raise ArtifactError("stopped")
                # On a thread that lasts as long as the app, so the child dies with the app
                # and not with the worker's thread (lifetime.start_child).
                self._child = child = start_child(
                    lambda: subprocess.Popen(
                        dying_with_us(command),
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        env={**os.environ, "PYTHONSAFEPATH": "1"},
                    )
                )
            last_error = ""
            assert child.stdout is not None
            for line in child.stdout:
                log.write(line)
                text = line.decode("utf-8", "replace").strip()
                if ERROR_MARK in text:
                    last_error = text
            code = child.wait()
        with self._lock:
            self._child = None
        if code != 0:
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            raise ArtifactError(last_error or f"lora-export stopped ({how}); see {self.log_path}")

    def stop(self) -> None:
        """End the export under way, if any, and any after it: the app is closing. The
        exporter publishes whole, so nothing half-written is left."""
        with self._lock:
            self._stopped = True
            if self._child is not None and self._child.poll() is None:
                self._child.terminate()
