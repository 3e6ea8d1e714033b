"""Programs opened from the palette: over a foundation already open, over another
foundation opened beside the others (each adapter at one more quantization), or an
adapter open already at another LoRA scale."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path

from lora_tui.engine.artifacts import open_foundation
from lora_tui.engine.foundations import with_label
from lora_tui.engine.protocol import EngineClient
from lora_tui.engine.scaled import scaled_copy
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


async def open_at_scale(
    program: Path,
    pane_name: str,
    scale: float,
    add_program: AddProgram,
    notify: Callable[..., None],
) -> None:
    """The adapter of a pane (``pane_name``, over ``program``) at ``scale``, in a pane of its
    own ("nobel ×0.5", with its foundation's label as the pane's). The scaled copy is made
    in the tool's cache off the UI's loop: a second or so for a big adapter."""
    try:
        copy = await asyncio.to_thread(scaled_copy, program, scale)
    except ArtifactError as err:
        notify(str(err), title="open at scale", severity="error", timeout=15)
        return
    # The pane's name is the program's with its label after it ("nobel · 8da4w g32").
    label = pane_name[len(program.stem) :] if pane_name.startswith(program.stem) else ""
    await add_program(copy, copy.stem + label)
