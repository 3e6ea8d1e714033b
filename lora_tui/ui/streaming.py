"""Streamed text on its way from the engine's reader thread to the panes.

Tokens can arrive far faster than a screen can show them. They wait here, and the app is
told once per batch (not per token), so a key press never waits behind a queue of tokens.
The first text after a pause shows at once; after that at most every ``STREAM_INTERVAL_S``,
so a long reply redraws a few times a second."""

from __future__ import annotations

import threading
import time

STREAM_INTERVAL_S = 0.1


class PieceBuffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[str]] = {}
        self._last_take = 0.0
        self.timer_set = False  # a flush is already scheduled

    def add(self, adapter: str, text: str) -> bool:
        """Keep ``text`` (any thread); True if the buffer was empty: tell the app."""
        with self._lock:
            first = not self._pending
            self._pending.setdefault(adapter, []).append(text)
        return first

    def wait_s(self) -> float:
        """How long until the next batch may show (0 or less: now)."""
        return self._last_take + STREAM_INTERVAL_S - time.monotonic()

    def take(self) -> dict[str, str]:
        """Everything waiting, joined per adapter."""
        self._last_take = time.monotonic()
        with self._lock:
            pending, self._pending = self._pending, {}
        return {name: "".join(texts) for name, texts in pending.items()}
