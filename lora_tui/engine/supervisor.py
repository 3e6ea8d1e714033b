"""Keeps an engine running for a client: starts it, and when it dies starts a new one, but
not without end (a program that crashes every engine would otherwise loop)."""

from __future__ import annotations

import time
from collections.abc import Callable

from lora_tui.engine.protocol import EngineClient, EngineEvent, EngineFactory

MAX_RESTARTS_PER_MINUTE = 3


class EngineSupervisor:
    def __init__(
        self,
        factory: EngineFactory,
        on_event: Callable[[EngineEvent], None],
        max_restarts_per_minute: int = MAX_RESTARTS_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._on_event = on_event
        self._max_restarts = max_restarts_per_minute
        self._clock = clock
        self._restarts: list[float] = []  # when the engine was started again
        self.engine: EngineClient | None = None

    def start(self) -> EngineClient:
        self.engine = self._factory(self._on_event)
        return self.engine

    def restart(self) -> EngineClient | None:
        """The engine died: close what is left of it and start a new one. None when it has
        died more than the limit within a minute; it then stays stopped."""
        now = self._clock()
        self._restarts = [t for t in self._restarts if now - t < 60] + [now]
        self.close()
        if len(self._restarts) > self._max_restarts:
            self.engine = None
            return None
        return self.start()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
