"""Programs opened from the palette: over a foundation already open, or over another
foundation opened beside the others (each adapter at one more quantization)."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from lora_tui.engine.artifacts import open_foundation
from lora_tui.engine.foundations import with_label
from lora_tui.format import ArtifactError

if TYPE_CHECKING:
    from lora_tui.ui.workbench import Workbench


def parse_paths(answer: str) -> list[Path]:
    """The dialog's answer: paths separated by spaces (quoted when they hold one), or one
    file's path as it was pasted, spaces and all."""
    whole = Path(answer.strip()).expanduser()
    if whole.is_file():
        return [whole]
    try:
        return [Path(word).expanduser() for word in shlex.split(answer)]
    except ValueError as err:  # an unclosed quote
        raise ValueError(f"cannot read the paths: {err}") from None


async def open_programs(app: Workbench, paths: list[Path]) -> None:
    """``a.pte b.pte``: panes over the foundations open. ``W.ptd a.pte …``: W opened first,
    in an engine of its own, and its programs named with its quantization."""
    if not paths or paths[0].suffix != ".ptd":
        for path in paths:
            await app.add_program(path)
        return
    weights, programs = paths[0], paths[1:]
    if app.engine is None:
        app.notify("no engine is running", severity="error")
        return
    try:
        foundation = await asyncio.to_thread(open_foundation, weights)  # reads the manifest
        label = app.engine.open_foundation(weights, foundation.quantization, programs)
    except (ArtifactError, ValueError) as err:
        app.notify(str(err), title="open foundation", severity="error", timeout=15)
        return
    for program in programs:
        await app.add_program(program, with_label(program.stem, label))
