"""Messages the engine's and the build's reader threads post to the app."""

from __future__ import annotations

from textual.message import Message

from lora_tui.demo.build_child import BuildEvent
from lora_tui.engine.protocol import EngineEvent


class EngineEventArrived(Message):
    def __init__(self, event: EngineEvent) -> None:
        super().__init__()
        self.event = event


class BuildEventArrived(Message):
    def __init__(self, event: BuildEvent) -> None:
        super().__init__()
        self.event = event


class PiecesReady(Message):
    """Streamed text is waiting in the app's buffer (posted once per batch, not per token)."""
