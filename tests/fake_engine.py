"""An engine behind the UI's EngineClient interface with fixed, scripted behaviour.

It answers at once with fixed replies, memory and speeds, so UI tests and snapshots are
fast and stable. ``hold=True`` leaves replies mid-stream until cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exporter.base import PROJECTIONS
from lora_tui.engine.memory import MemorySample
from lora_tui.engine.types import (
    AdapterInfo,
    GenerationSettings,
    MemoryBreakdown,
    Piece,
    ReplyDone,
    ReplyEnd,
    ReplyStats,
    Sharing,
)
from lora_tui.engine.worker import EngineEvent, EngineReady, Loaded, LoadFailed

FIXED_MEMORY = MemorySample(
    rss_mib=1504.0, pss_mib=1093.0, uss_mib=902.0, anon_mib=640.0, file_mib=864.0
)
FIXED_STATS = ReplyStats(
    prompt_tokens=31,
    reused_tokens=0,
    new_tokens=12,
    ttft_s=0.21,
    prefill_tok_s=142.0,
    decode_tok_s=26.4,
)
REPLIES = {
    "nobel": "The 2024 Nobel Prize in Physics went to **John Hopfield** and **Geoffrey Hinton**.",
    "executorch": "A `.pte` file is an ExecuTorch *program*; a `.ptd` file holds its weights.",
}
DEFAULT_REPLY = "I am a tiny model, and this is my **fixed** answer."


class FakeEngine:
    def __init__(
        self,
        on_event: Callable[[EngineEvent], None],
        *,
        hold: bool = False,
        fail: dict[str, str] | None = None,
    ) -> None:
        self.on_event = on_event
        self.hold = hold
        self.fail = fail or {}
        self.calls: list[tuple] = []
        self.running: dict[str, str] = {}
        self.loaded = 0
        on_event(
            EngineReady(
                Sharing(True, "XNNPACK weight cache on (confirmed)"),
                371.0,
                "foundation.ptd",
                513.4,
                512,
            )
        )

    def load(self, path: Path, name: str | None = None) -> None:
        name = name or path.stem
        self.calls.append(("load", str(path), name))
        if name in self.fail:
            self.on_event(LoadFailed(str(path), name, self.fail[name]))
            return
        self.loaded += 1
        increment = 683.0 if self.loaded == 1 else 152.0
        before = 371.0 + (self.loaded - 1) * 152.0 + (531.0 if self.loaded > 1 else 0.0)
        self.on_event(
            Loaded(
                AdapterInfo(
                    name=name,
                    path=str(path),
                    kind="base" if name == "base" else "adapter",
                    rank=None if name == "base" else 16,
                    target_modules=() if name == "base" else tuple(PROJECTIONS),
                    load_s=0.7,
                    rss_before_mib=before,
                    rss_after_mib=before + increment,
                    pss_after_mib=None,
                    uss_after_mib=None,
                    anon_increment_mib=44.0,
                    breakdown=MemoryBreakdown(0.0 if name == "base" else 18.7, 11.3, 19.3),
                )
            )
        )

    def unload(self, name: str) -> None:
        self.calls.append(("unload", name))

    def send(self, names: list[str], text: str, settings: GenerationSettings) -> None:
        self.calls.append(("send", tuple(names), text))
        for name in names:
            reply = REPLIES.get(name, DEFAULT_REPLY)
            words = reply.split(" ")
            shown = words[: len(words) // 2] if self.hold else words
            pieces = [w if i == 0 else " " + w for i, w in enumerate(shown)]
            for piece in pieces:
                self.on_event(Piece(name, piece))
            if self.hold:
                self.running[name] = "".join(pieces)
            else:
                self.on_event(ReplyDone(name, reply, ReplyEnd.STOP, FIXED_STATS))

    def cancel(self, names: list[str] | None = None) -> None:
        self.calls.append(("cancel", names))
        for name in list(self.running):
            if names is None or name in names:
                self.on_event(
                    ReplyDone(name, self.running.pop(name), ReplyEnd.CANCELLED, FIXED_STATS)
                )

    def clear(self, names: list[str] | None = None) -> None:
        self.calls.append(("clear", names))
        self.cancel(names)

    def memory(self) -> MemorySample:
        return FIXED_MEMORY

    def close(self) -> None:
        self.calls.append(("close",))
