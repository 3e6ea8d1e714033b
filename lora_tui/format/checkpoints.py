"""A training run's folder: Hugging Face Trainer's ``checkpoint-N/`` folders, each a PEFT
adapter (``adapter_config.json`` + ``adapter_model.safetensors``) saved at step N.

Which checkpoints a run holds, and which of them are complete, is decided here, from the
files alone (the standard library only): lora-export exports the complete ones and notes
the rest, and whatever watches a run while it trains takes a checkpoint by the same rule.
A checkpoint is complete when its config is a JSON object and its safetensors file is as
long as its own header says: training writes the files in place, so a folder seen
mid-write has a missing, empty or short file.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from lora_tui.format.errors import ArtifactError, quoted
from lora_tui.format.manifest import checkpoint_program_name

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PICKLED_WEIGHTS = "adapter_model.bin"
# Trainer's name, its step without leading zeros: "checkpoint-0200" is not one of its.
CHECKPOINT_DIR = re.compile(r"checkpoint-(0|[1-9][0-9]{0,11})")
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on its JSON header


@dataclass(frozen=True)
class AdapterSource:
    """One program to export: its name, the adapter folder, and its step when the folder is
    a checkpoint of a run."""

    name: str
    path: Path
    step: int | None = None


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


def checkpoints(run: Path) -> list[Checkpoint]:
    """The ``checkpoint-N`` folders in ``run``, by step; [] if it has none (or is no folder)."""
    try:
        children = list(run.iterdir())
    except OSError:
        return []
    found = [
        Checkpoint(int(match[1]), child)
        for child in children
        if (match := CHECKPOINT_DIR.fullmatch(child.name)) and child.is_dir()
    ]
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def has_adapter_files(folder: Path) -> bool:
    """Whether ``folder`` holds an adapter's files itself (complete or not)."""
    return any((folder / name).exists() for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS))


def incomplete(folder: Path) -> str | None:
    """Why the adapter in ``folder`` cannot be read yet, in a few words; None when its
    files are whole."""
    config, weights = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        if (folder / PICKLED_WEIGHTS).is_file():
            return f"only {PICKLED_WEIGHTS}: pickled adapters are not read"
        if (folder / "model.safetensors").is_file():
            return "a whole model's checkpoint, not a PEFT adapter's"
        return f"no {ADAPTER_WEIGHTS} yet"
    if not config.is_file():
        return f"no {ADAPTER_CONFIG} yet"
    try:
        if not isinstance(json.loads(config.read_bytes()), dict):
            return f"{ADAPTER_CONFIG} is not a JSON object"
    except (OSError, ValueError):
        return f"{ADAPTER_CONFIG} is not whole JSON yet"
    missing = _safetensors_shortfall(weights)
    return None if missing is None else f"{ADAPTER_WEIGHTS} is {missing} yet"


def _safetensors_shortfall(path: Path) -> str | None:
    """What the file lacks against its header ("empty", "short of its header", "2,048
    bytes short"), None when it is as long as the header says."""
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size < 8:
                return "empty" if size == 0 else "short of its header"
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if header_size > _MAX_HEADER or size < 8 + header_size:
                return "short of its header"
            header = json.loads(handle.read(header_size))
    except (OSError, ValueError):
        return "not a whole safetensors file"
    if not isinstance(header, dict):
        return "not a whole safetensors file"
    ends = [
        entry["data_offsets"][1]
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and _offsets(entry)
    ]
    expected = 8 + header_size + max(ends, default=0)
    return None if size >= expected else f"{expected - size:,} bytes short"


def _offsets(entry: dict[str, object]) -> bool:
    offsets = entry.get("data_offsets")
    return (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
    )


def adapter_sources(name: str, folder: Path) -> tuple[list[AdapterSource], list[str]]:
    """What ``--adapter NAME=FOLDER`` exports, and a note for each checkpoint skipped.

    An adapter folder is one program, as ever. A run's folder is one program per complete
    checkpoint, ``NAME-stepN`` (and ``NAME`` for an adapter saved at the run's top, as
    Trainer's ``save_model`` does at the end); an incomplete checkpoint is noted, not an
    error. A folder with neither is an error, as is a run with no complete checkpoint."""
    runs = checkpoints(folder)
    if not runs:
        if folder.is_dir() and not has_adapter_files(folder):
            if (folder / PICKLED_WEIGHTS).is_file():
                return [AdapterSource(name, folder)], []  # the adapter reader says why not
            raise ArtifactError(
                f"{folder}: neither a PEFT adapter ({ADAPTER_CONFIG} + {ADAPTER_WEIGHTS}) "
                "nor a training run's checkpoint-N folders"
            )
        return [AdapterSource(name, folder)], []  # missing folders are the reader's to tell
    sources = [AdapterSource(name, folder)] if has_adapter_files(folder) else []
    notes = []
    for checkpoint in runs:
        why = incomplete(checkpoint.path)
        if why is None:
            program = checkpoint_program_name(name, checkpoint.step)
            # Absolute: the manifest's source then names the run from wherever it is read
            # (eval finds a run's programs by it).
            path = checkpoint.path.absolute()
            sources.append(AdapterSource(program, path, checkpoint.step))
        else:
            notes.append(f"{name}: {checkpoint.path.name} skipped ({why})")
    if not sources:
        raise ArtifactError(
            f"{folder}: no complete checkpoint yet ({quoted(runs[-1].path.name)}: "
            f"{incomplete(runs[-1].path)})"
        )
    return sources, notes


def run_state(folder: Path) -> list[tuple[str, int, int]]:
    """What a watch compares to see that a run's folder changed: each adapter file in it
    and in its checkpoints, with its size and mtime (a stat each, no read)."""
    state = []
    for adapter in [folder, *(checkpoint.path for checkpoint in checkpoints(folder))]:
        for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
            try:
                seen = (adapter / name).stat()
            except OSError:
                continue
            state.append((str(adapter / name), seen.st_size, seen.st_mtime_ns))
    return state
