"""Packed weights on disk with real programs: the first start packs them into a file, a later
start maps that file and answers the same, nothing writes to it, and a damaged file is
packed again instead of trusted. Each start is a fresh process, as a user's are."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.artifacts import TinyArtifacts

START = """
import json, sys
from pathlib import Path
from lora_tui.engine.host import ModelHost
host = ModelHost(Path(sys.argv[1]))
info = host.load(Path(sys.argv[2]))
session = host.sessions[info.name]
logits = session.module.forward(
    [__import__("torch").tensor([[1, 2, 3]]), __import__("torch").tensor([0])]
)[0]
print(json.dumps({
    "path": str(host.packed.path) if host.packed.path else None,
    "detail": host.packed.detail,
    "logits": [round(float(x), 5) for x in logits[0, :16]],
}))
"""


def start(artifacts: TinyArtifacts, cache: Path, program: str = "full") -> dict:
    done = subprocess.run(
        [sys.executable, "-c", START, str(artifacts.foundation), str(artifacts.program(program))],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LORA_TUI_CACHE": str(cache), "OMP_NUM_THREADS": "1"},
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_later_start_maps_the_file_the_first_packed(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    first = start(tiny_artifacts, tmp_path)
    assert first["path"] and first["detail"].startswith("packed now"), first["detail"]
    data = Path(first["path"])
    recorded = json.loads(data.with_suffix(".json").read_text())
    assert recorded["sha256"] == sha256(data)

    later = start(tiny_artifacts, tmp_path)
    assert later["detail"] == "mapped from disk" and later["path"] == first["path"]
    assert later["logits"] == first["logits"]
    # Another program over the same foundation maps it too; its own weights pack in memory.
    other = start(tiny_artifacts, tmp_path, "partial")
    assert other["detail"] == "mapped from disk"
    assert sha256(data) == recorded["sha256"]  # nobody wrote to it


def test_a_damaged_file_is_packed_again_not_trusted(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    first = start(tiny_artifacts, tmp_path)
    data = Path(first["path"])
    with data.open("r+b") as file:  # garbage over the first packed weight
        file.write(b"\xff" * 4096)
    again = start(tiny_artifacts, tmp_path)
    assert again["detail"].startswith("packed now"), again["detail"]
    assert again["logits"] == first["logits"]


BROKEN_FIRST = """
import json, sys
from pathlib import Path
from lora_tui.engine.host import ModelHost
host = ModelHost(Path(sys.argv[1]))
try:
    host.load(Path(sys.argv[2]))
    refused = None
except Exception as err:
    refused = str(err)
from lora_tui.engine.packed import folder
after_broken = {"packed": host.packed, "files": sorted(p.name for p in folder().glob("*.bin"))}
host.load(Path(sys.argv[3]))
print(json.dumps({
    "refused": refused,
    "after_broken": str(after_broken),
    "path": str(host.packed.path) if host.packed.path else None,
    "detail": host.packed.detail,
}))
"""


def test_a_broken_first_program_leaves_the_packing_to_the_next(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    good = tiny_artifacts.program("full")
    broken = tmp_path / "broken.pte"
    program = bytearray(good.read_bytes())
    program[64:4096] = bytes(4096 - 64)  # the header stays; the program's tables do not
    broken.write_bytes(bytes(program))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BROKEN_FIRST,
            str(tiny_artifacts.foundation),
            str(broken),
            str(good),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LORA_TUI_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"},
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["refused"] and "broken.pte" in result["refused"]
    # Its packing failed and was let go: no file, nothing in use.
    assert result["after_broken"] == str({"packed": None, "files": []})
    assert result["path"] and result["detail"].startswith("packed now"), result["detail"]
