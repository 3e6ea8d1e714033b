"""A training run and an export folder on disk, and a stand-in for lora-export over them:
what the watcher (``lora_tui/watch``) is tested against, with no model."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from lora_tui.format import FOUNDATION_FILE, ArtifactError, Manifest, ProgramEntry
from lora_tui.format.checkpoints import checkpoints as checkpoint_folders
from lora_tui.watch.checkpoints import ADAPTER_FILES, signature
from lora_tui.watch.watcher import ExportJob

SHAPE = {
    "dim": 8,
    "n_layers": 1,
    "n_heads": 2,
    "n_kv_heads": 1,
    "head_dim": 4,
    "hidden_dim": 16,
    "vocab_size": 32,
    "norm_eps": 1e-5,
    "rope_theta": 10000.0,
}


def write_checkpoint(run_dir: Path, step: int, files: tuple[str, ...] = ADAPTER_FILES) -> Path:
    """``checkpoint-STEP`` with the adapter's files (``files``: only some of them), whole by
    lora-export's rule: the config a JSON object, the safetensors as long as its header says
    (one tensor of four float32s, their value the step)."""
    folder = run_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "adapter_config.json": json.dumps({"r": 8, "step": step}).encode(),
        "adapter_model.safetensors": _safetensors(step),
    }
    for name in files:
        (folder / name).write_bytes(contents[name])
    return folder


def _safetensors(step: int) -> bytes:
    data = struct.pack("<4f", *[float(step)] * 4)
    header = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, len(data)]}}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def export_folder(
    folder: Path, base: Path, programs: dict[str, ProgramEntry] | None = None
) -> Path:
    """A lora-export output folder: a foundation and its manifest, exported from ``base``.
    Returns the foundation's path (what ``--weights`` names)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FOUNDATION_FILE).write_bytes(b"foundation")
    manifest = Manifest(
        base_source=str(base),
        base_fingerprint="2" * 64,
        foundation_id=12345,
        foundation_file=FOUNDATION_FILE,
        foundation_sha256="3" * 64,
        foundation_size_bytes=10,
        shape=SHAPE,
        max_context=64,
        tokenizer_file="tokenizer.json",
        chat_template=None,
        bos_id=1,
        stop_ids=[2],
        programs=programs or {},
    )
    (folder / "manifest.json").write_text(manifest.to_json())
    return folder / FOUNDATION_FILE


def checkpoint_entry(checkpoint: Path, file: str, step: int | None) -> ProgramEntry:
    return ProgramEntry(file=file, kind="adapter", size_bytes=7, source=str(checkpoint), step=step)


class FakeExport:
    """What ``lora-export --adapter NAME=RUN_DIR --out OUT`` does, without a model: a
    program ``NAME-stepN.pte`` and its manifest entry for each checkpoint of the run with
    both files, skipping those exported already. ``fail``: it fails with that line."""

    def __init__(self, fail: str | None = None) -> None:
        self.jobs: list[ExportJob] = []
        self.fail = fail

    def __call__(self, job: ExportJob) -> None:
        self.jobs.append(job)
        if self.fail is not None:
            raise ArtifactError(self.fail)
        manifest = Manifest.read(job.out)
        for checkpoint in checkpoint_folders(job.run_dir):
            name = f"{job.name}-step{checkpoint.step}"
            if name in manifest.programs or signature(checkpoint.path) is None:
                continue
            (job.out / f"{name}.pte").write_bytes(b"program")
            entry = checkpoint_entry(checkpoint.path, f"{name}.pte", checkpoint.step)
            manifest.programs[name] = entry
        (job.out / "manifest.json").write_text(manifest.to_json())
