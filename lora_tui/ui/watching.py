"""A training run watched (``--watch RUN_DIR``) in the app: the watcher (``lora_tui/watch``)
runs on a thread worker of the main screen and posts what it reports as messages; the
screen opens each new program as a pane, as the palette's "Open programs" does."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.message import Message

from lora_tui.format import display_name
from lora_tui.ui.opening import AddProgram
from lora_tui.ui.widgets.adapter_pane import AdapterPane
from lora_tui.watch.watcher import (
    Exported,
    ExportFailed,
    Exporting,
    RunWatcher,
    WatchedProgram,
    WatchEvent,
)


class CheckpointsExporting(Message):
    def __init__(self, run: str, checkpoints: tuple[str, ...]) -> None:
        super().__init__()
        self.run, self.checkpoints = run, checkpoints


class CheckpointsExported(Message):
    def __init__(self, run: str, programs: tuple[WatchedProgram, ...]) -> None:
        super().__init__()
        self.run, self.programs = run, programs


class WatchFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


WatchMessage = CheckpointsExporting | CheckpointsExported | WatchFailed


def as_message(event: WatchEvent) -> WatchMessage:
    if isinstance(event, Exporting):
        return CheckpointsExporting(event.run, event.checkpoints)
    if isinstance(event, Exported):
        return CheckpointsExported(event.run, event.programs)
    assert isinstance(event, ExportFailed)
    return WatchFailed(event.error)


def watch_in_thread(watcher: RunWatcher, post: Callable[[Message], object]) -> None:
    """A thread worker's work: the watcher until it is stopped, each report posted."""
    watcher.run(lambda event: post(as_message(event)))


async def show_watched(
    message: WatchMessage,
    panes: Iterable[AdapterPane],
    add_program: AddProgram,
    notify: Callable[..., None],
) -> None:
    """What the watcher reported: its progress, a failure, or new programs as panes named
    by run and step (one open already, given on the command line, is not opened twice)."""
    if isinstance(message, CheckpointsExporting):
        notify(f"exporting {', '.join(message.checkpoints)}…", title=f"watching {message.run}")
    elif isinstance(message, WatchFailed):
        notify(message.error, title="watch: export failed", severity="error", timeout=15)
    else:
        open_paths = {p.path.resolve() for p in panes if p.path is not None}
        new = [p for p in message.programs if p.path.resolve() not in open_paths]
        for program in new:  # "nobel step 200", as eval's table reads it
            await add_program(program.path, display_name(message.run, program.step))
        if new:
            steps = ", ".join(str(p.step) for p in new)
            notify(f"opened {message.run} step {steps}", title=f"watching {message.run}")
