"""The small typed interface between the UI and an engine (real or fake)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from lora_tui.engine.memory import MemorySample
from lora_tui.engine.types import GenerationSettings
from lora_tui.engine.worker import EngineEvent


class EngineClient(Protocol):
    def load(self, path: Path, name: str | None = None) -> None: ...
    def unload(self, name: str) -> None: ...
    def send(self, names: list[str], text: str, settings: GenerationSettings) -> None: ...
    def cancel(self, names: list[str] | None = None) -> None: ...
    def clear(self, names: list[str] | None = None) -> None: ...
    def memory(self) -> MemorySample | None: ...
    def close(self) -> None: ...


# Given the callback for events (called from any thread), start an engine.
EngineFactory = Callable[[Callable[[EngineEvent], None]], EngineClient]


def process_engine_factory(
    weights: Path, tokenizer: Path | None, share: bool, log_path: Path | None
) -> EngineFactory:
    def start(on_event: Callable[[EngineEvent], None]) -> EngineClient:
        from lora_tui.engine.worker import EngineProcess

        return EngineProcess(weights, on_event, tokenizer=tokenizer, share=share, log_path=log_path)

    return start
