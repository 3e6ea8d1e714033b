"""Which of a run's checkpoints are complete: Trainer-style ``checkpoint-N/`` folders, each
a PEFT adapter, taken only once both its files are there and have stopped changing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# Exactly checkpoint-N: the Trainer writes into tmp-checkpoint-N and renames it when done.
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")

# Each adapter file's size and modification time: what changes while it is written.
Signature = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def checkpoint_step(folder: Path) -> int | None:
    """N of a ``checkpoint-N`` folder's name, else None."""
    match = CHECKPOINT_NAME.fullmatch(folder.name)
    return int(match.group(1)) if match else None


def checkpoint_folders(run_dir: Path) -> list[Checkpoint]:
    """The run's ``checkpoint-N`` folders, in order of step."""
    try:
        entries = list(run_dir.iterdir())
    except OSError:  # gone or unreadable for now: nothing to take this time
        return []
    found = [
        Checkpoint(entry, step)
        for entry in entries
        if (step := checkpoint_step(entry)) is not None and entry.is_dir()
    ]
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def signature(folder: Path) -> Signature | None:
    """The adapter files' sizes and times, or None while one is missing or empty."""
    stats = []
    for name in ADAPTER_FILES:
        try:
            found = (folder / name).stat()
        except OSError:
            return None
        if found.st_size == 0:
            return None
        stats.append((found.st_size, found.st_mtime_ns))
    return tuple(stats)


class Completeness:
    """Across polls: a checkpoint is complete once both adapter files are there and their
    sizes and times are what they were at the poll before, so a file still being written
    is not taken."""

    def __init__(self) -> None:
        self._last: dict[Path, Signature] = {}

    def poll(self, run_dir: Path) -> list[Checkpoint]:
        """The complete checkpoints now, in order of step."""
        now = {c.path: (c, signature(c.path)) for c in checkpoint_folders(run_dir)}
        complete = [
            c for c, sig in now.values() if sig is not None and self._last.get(c.path) == sig
        ]
        self._last = {path: sig for path, (_, sig) in now.items() if sig is not None}
        return complete
