"""The engine: adapter programs over one shared foundation, with no UI.

``ModelHost`` runs them in this process (scripts, benchmarks); ``EngineProcess`` runs a
``ModelHost`` in a worker process and streams its events back (the UI).
"""

from lora_tui.engine.host import ModelHost
from lora_tui.engine.types import (
    AdapterInfo,
    EngineError,
    GenerationSettings,
    MemoryBreakdown,
    Notice,
    Piece,
    ReplyDone,
    ReplyEnd,
    ReplyStats,
    Sharing,
)

__all__ = [
    "AdapterInfo",
    "EngineError",
    "GenerationSettings",
    "MemoryBreakdown",
    "ModelHost",
    "Notice",
    "Piece",
    "ReplyDone",
    "ReplyEnd",
    "ReplyStats",
    "Sharing",
]
