"""Keeps an engine running for a client: starts it, and when it dies starts a new one, but
not without end (a program that crashes every engine would otherwise loop)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lora_tui.engine.protocol import EngineClient, EngineEvent, EngineFactory

MAX_RESTARTS_PER_MINUTE = 3


class EarlyEvents:
    """The engine's events as it sends them, held until whoever shows them is ready (the
    engine starts before the screen is up, and before the UI is imported), then passed on
    in order."""

    def __init__(self, deliver: Callable[[EngineEvent], None]) -> None:
        self._deliver = deliver
        self._held: list[EngineEvent] | None = []
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(event)
                return
        self._deliver(event)

    def release(self) -> None:
        with self._lock:  # an event arriving meanwhile waits, so none overtakes them
            held, self._held = self._held or [], None
            for event in held:
                self._deliver(event)


class StartedEarly:
    """An engine factory whose first engine starts now, before whoever shows its events is
    ready: the CLI makes one before it imports the UI, so the engine's process starts while
    Textual is imported (about 0.3 s here). That engine's events wait until the first call
    says where they go; later calls (a restart) start new engines."""

    def __init__(self, factory: EngineFactory) -> None:
        self._factory = factory
        self._deliver: Callable[[EngineEvent], None] | None = None
        self._events = EarlyEvents(self._pass_on)
        self._engine: EngineClient | None = factory(self._events)

    def _pass_on(self, event: EngineEvent) -> None:
        if self._deliver is not None:  # always, once released
            self._deliver(event)

    def __call__(self, on_event: Callable[[EngineEvent], None]) -> EngineClient:
        if self._engine is None:
            return self._factory(on_event)
        engine, self._engine = self._engine, None
        self._deliver = on_event
        self._events.release()
        return engine


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
