"""A build behind the app's BuildClient interface that reports what the test tells it to."""

from __future__ import annotations

from collections.abc import Callable

from lora_tui.demo.build_child import BuildEvent


class FakeBuild:
    def __init__(self) -> None:
        self.on_event: Callable[[BuildEvent], None] | None = None
        self.stopped = False

    def start(self, on_event: Callable[[BuildEvent], None]) -> None:
        self.on_event = on_event

    def stop(self) -> None:
        self.stopped = True

    def report(self, event: BuildEvent) -> None:
        assert self.on_event is not None, "the app never started the build"
        self.on_event(event)
