"""The panes of a build that is still running: its progress in each, ticking every second;
then the engine started and the programs loaded, each pane coming alive as its own loads.
The build runs in a child process (``lora_tui/demo/build_child.py``), so the app is on screen from
the first second."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from lora_tui.demo.build_child import BuildClient, BuildEvent, BuildFailed, BuildProgress
from lora_tui.engine.protocol import EngineClient
from lora_tui.ui.widgets.adapter_pane import AdapterPane, PaneState


class PendingBuild:
    def __init__(
        self,
        client: BuildClient,
        panes: Callable[[], Iterable[AdapterPane]],
        start_engine: Callable[[], EngineClient],
        notify: Callable[..., None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``start_engine`` is called once the programs exist; ``notify`` is the app's."""
        self.client, self.panes, self.notify = client, panes, notify
        self.start_engine = start_engine
        self.clock = clock
        self.started = clock()
        self.latest: BuildProgress | None = None
        self.running = False

    def start(self, on_event: Callable[[BuildEvent], None]) -> None:
        self.started, self.running = self.clock(), True
        self.client.start(on_event)

    def stop(self) -> None:
        if self.running:
            self.client.stop()

    def handle(self, event: BuildEvent) -> None:
        if isinstance(event, BuildProgress):
            self.latest = event
            self.tick()
            return
        self.running = False
        if isinstance(event, BuildFailed):
            for pane in self._waiting():
                pane.failed(f"build failed: {event.error}")
            self.notify(event.error, title="build failed", severity="error", timeout=30)
            return
        if event.built:
            self.notify(f"built in {event.seconds:.0f} s; later starts reuse it", title="build")
        engine = self.start_engine()
        for pane, program in programs_by_pane(self.panes(), event.programs):
            if program is None:
                pane.failed("the build made no program for it")
            else:
                pane.path = program
                pane.loading()
                engine.load(program, pane.adapter_name)

    def tick(self) -> None:
        """Show how far the build is, with the time it has taken so far (every second)."""
        if self.running:
            for pane in self._waiting():
                self.show(pane)

    def show(self, pane: AdapterPane) -> None:
        seconds = int(self.clock() - self.started)
        pane.building(self.latest, f"{seconds // 60}:{seconds % 60:02d}")

    def _waiting(self) -> list[AdapterPane]:
        return [p for p in self.panes() if p.state is PaneState.BUILDING]


def programs_by_pane(
    panes: Iterable[AdapterPane], programs: Iterable[Path]
) -> list[tuple[AdapterPane, Path | None]]:
    """Each waiting pane with the built program it waits for, by folder and name (None: the
    build made none). Several demo quantizations each have a nobel.pte of their own."""
    built = {(path.parent.name, path.name): path for path in programs}
    return [
        (pane, built.get((pane.path.parent.name, pane.path.name)) if pane.path else None)
        for pane in panes
        if pane.state is PaneState.BUILDING
    ]
