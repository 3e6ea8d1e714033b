"""The engine: adapter programs over one shared foundation, with no UI.

``ModelHost`` runs them in this process (scripts, benchmarks); ``EngineProcess`` runs a
``ModelHost`` in a worker process and streams its events back (the UI). Both import torch
and executorch only when used, so importing the types stays cheap.
"""

from typing import TYPE_CHECKING

from lora_tui.engine.protocol import (
    EngineClient,
    EngineEvent,
    EngineFailed,
    EngineReady,
    Loaded,
    LoadFailed,
    Piece,
    ReplyDone,
)
from lora_tui.engine.types import (
    AdapterInfo,
    EngineError,
    GenerationSettings,
    MemoryBreakdown,
    Message,
    ReplyEnd,
    ReplyStats,
    Sharing,
)

if TYPE_CHECKING:
    from lora_tui.engine.host import ModelHost
    from lora_tui.engine.worker import EngineProcess

__all__ = [
    "AdapterInfo",
    "EngineClient",
    "EngineError",
    "EngineEvent",
    "EngineFailed",
    "EngineProcess",
    "EngineReady",
    "Loaded",
    "LoadFailed",
    "GenerationSettings",
    "MemoryBreakdown",
    "Message",
    "ModelHost",
    "Piece",
    "ReplyDone",
    "ReplyEnd",
    "ReplyStats",
    "Sharing",
]


def __getattr__(name: str):
    if name == "ModelHost":
        from lora_tui.engine.host import ModelHost

        return ModelHost
    if name == "EngineProcess":
        from lora_tui.engine.worker import EngineProcess

        return EngineProcess
    raise AttributeError(name)
