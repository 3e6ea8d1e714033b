"""Which of a run's checkpoints the watch takes: those complete by lora-export's own rule
(``lora_tui/format/checkpoints.py``: the config whole JSON, the safetensors as long as its
header says) whose files have also kept their size and time since the poll before, so a
checkpoint the trainer is still writing is not exported half-way."""

from __future__ import annotations

from pathlib import Path

from lora_tui.format.checkpoints import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CHECKPOINT_DIR,
    Checkpoint,
    checkpoints,
    incomplete,
)

ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)

# Each adapter file's size and modification time: what changes while it is written.
Signature = tuple[tuple[int, int], ...]


def checkpoint_step(folder: Path) -> int | None:
    """N of a ``checkpoint-N`` folder's name, else None."""
    match = CHECKPOINT_DIR.fullmatch(folder.name)
    return int(match.group(1)) if match else None


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
    """Across polls: a checkpoint is taken once it is complete and its adapter files' sizes
    and times are what they were at the poll before."""

    def __init__(self) -> None:
        self._last: dict[Path, Signature] = {}

    def poll(self, run_dir: Path) -> list[Checkpoint]:
        """The complete checkpoints now, in order of step."""
        now = {c.path: (c, signature(c.path)) for c in checkpoints(run_dir)}
        complete = [
            c
            for c, sig in now.values()
            if sig is not None and self._last.get(c.path) == sig and incomplete(c.path) is None
        ]
        self._last = {path: sig for path, (_, sig) in now.items() if sig is not None}
        return complete
