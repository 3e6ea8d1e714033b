"""Messages the engine's reader thread and the memory sampler post to the app."""

from __future__ import annotations

from textual.message import Message

from lora_tui.engine.memory import MemorySample
from lora_tui.engine.protocol import EngineEvent


class EngineEventArrived(Message):
    def __init__(self, event: EngineEvent) -> None:
        super().__init__()
        self.event = event


class PiecesReady(Message):
    """Streamed text is waiting in the app's buffer (posted once per batch, not per token)."""


class MemorySampled(Message):
    def __init__(self, sample: MemorySample) -> None:
        super().__init__()
        self.sample = sample
