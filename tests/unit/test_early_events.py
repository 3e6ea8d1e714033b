"""The engine starts before the screen that shows its events: those it sends first wait,
then arrive in order, and none overtakes them."""

from __future__ import annotations

import threading

from lora_tui.ui.app import EarlyEvents


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
