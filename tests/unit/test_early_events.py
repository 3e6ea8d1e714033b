"""The engine starts before the screen that shows its events (and, from the command line,
before the UI is imported): those it sends first wait, then arrive in order, and none
overtakes them."""

from __future__ import annotations

import threading

from lora_tui.engine.supervisor import EarlyEvents, StartedEarly


def test_events_before_the_screen_wait_and_then_arrive_in_order() -> None:
    delivered: list[int] = []
    events = EarlyEvents(delivered.append)
    events(1)  # type: ignore[arg-type]
    events(2)  # type: ignore[arg-type]
    assert delivered == []
    events.release()
    events(3)  # type: ignore[arg-type]
    assert delivered == [1, 2, 3]


def test_an_event_sent_while_they_are_released_comes_after_them() -> None:
    delivered: list[int] = []
    releasing = threading.Event()
    go_on = threading.Event()

    def deliver(event: int) -> None:
        if event == 1:
            releasing.set()
            go_on.wait(5)
        delivered.append(event)

    events = EarlyEvents(deliver)
    events(1)  # type: ignore[arg-type]
    release = threading.Thread(target=events.release)
    release.start()
    releasing.wait(5)
    late = threading.Thread(target=events, args=(2,))
    late.start()
    go_on.set()
    release.join(5)
    late.join(5)
    assert delivered == [1, 2]


def test_an_engine_started_early_is_the_first_one_handed_out_with_its_events_held() -> None:
    started: list[object] = []

    def factory(on_event):  # noqa: ANN001, ANN202
        started.append(on_event)
        on_event(len(started) * 10)  # the engine's first event, sent while it starts
        return f"engine {len(started)}"

    early = StartedEarly(factory)  # type: ignore[arg-type]
    assert len(started) == 1  # started now, before anyone asked
    started[0](11)
    delivered: list[int] = []
    assert early(delivered.append) == "engine 1"  # type: ignore[arg-type,comparison-overlap]
    assert delivered == [10, 11]
    started[0](12)
    assert delivered == [10, 11, 12]
    # A restart starts a new engine, whose events go straight where they are asked to.
    restarted: list[int] = []
    assert early(restarted.append) == "engine 2"  # type: ignore[arg-type,comparison-overlap]
    assert restarted == [20] and delivered == [10, 11, 12]
