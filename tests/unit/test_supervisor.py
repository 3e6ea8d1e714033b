"""The restart policy, without Textual or a model: a dead engine is replaced, but an engine
that keeps dying stays stopped."""

from __future__ import annotations

from lora_tui.engine.supervisor import EngineSupervisor


class Engine:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_dead_engine_is_closed_and_replaced() -> None:
    started: list[Engine] = []
    supervisor = EngineSupervisor(lambda on_event: started.append(Engine()) or started[-1], print)
    first = supervisor.start()
    second = supervisor.restart()
    assert first.closed and second is started[1] and supervisor.engine is second


def test_more_than_the_limit_in_a_minute_stops_it() -> None:
    now = [0.0]
    supervisor = EngineSupervisor(lambda on_event: Engine(), print, 3, clock=lambda: now[0])
    supervisor.start()
    for _ in range(3):
        now[0] += 10
        assert supervisor.restart() is not None
    now[0] += 10
    assert supervisor.restart() is None and supervisor.engine is None


def test_restarts_older_than_a_minute_are_forgiven() -> None:
    now = [0.0]
    supervisor = EngineSupervisor(lambda on_event: Engine(), print, 3, clock=lambda: now[0])
    supervisor.start()
    for _ in range(10):
        now[0] += 30  # one every half minute: never more than 2 within a minute
        assert supervisor.restart() is not None
