"""Programs opened from the palette: over a foundation already open, or over another
foundation opened beside the others (each adapter at one more quantization)."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path

from lora_tui.engine.artifacts import open_foundation
from lora_tui.engine.foundations import with_label
from lora_tui.engine.protocol import EngineClient
from lora_tui.format import ArtifactError

AddProgram = Callable[[Path, str | None], Awaitable[None]]


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


async def open_programs(
    paths: list[Path],
    engine: EngineClient | None,
    add_program: AddProgram,
    notify: Callable[..., None],
) -> None:
    """``a.pte b.pte``: panes over the foundations open. ``W.ptd a.pte …``: W opened first,
    in an engine of its own, and its programs named with its quantization.
    ``add_program(path, name)`` makes a pane and loads its program (``name`` None: its file's)."""
    if not paths or paths[0].suffix != ".ptd":
        for path in paths:
            await add_program(path, None)
        return
    weights, programs = paths[0], paths[1:]
    if engine is None:
        notify("no engine is running", severity="error")
        return
    try:
        foundation = await asyncio.to_thread(open_foundation, weights)  # reads the manifest
        label = engine.open_foundation(weights, foundation.quantization, programs)
    except (ArtifactError, ValueError) as err:
        notify(str(err), title="open foundation", severity="error", timeout=15)
        return
    for program in programs:
        await add_program(program, with_label(program.stem, label))
