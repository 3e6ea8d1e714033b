"""ModelHost: adapter programs over one shared foundation, in this process.

Scripts and benchmarks use it directly. The UI runs it in a worker process (see
``worker.py``) because ``forward`` holds the GIL for the whole call.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from exporter.base import LlamaShape
from exporter.manifest import ProgramEntry
from lora_tui.engine.artifacts import Foundation, check_program_file, open_foundation
from lora_tui.engine.memory import MIB, sample
from lora_tui.engine.session import (
    AdapterSession,
    Event,
    ProgramLimits,
    Reply,
    load_module,
    read_constant,
    warm_up,
)
from lora_tui.engine.sharing import configure_sharing
from lora_tui.engine.types import (
    AdapterInfo,
    EngineError,
    GenerationSettings,
    MemoryBreakdown,
    Sharing,
)


class ModelHost:
    def __init__(self, weights: Path, tokenizer: Path | None = None, share: bool = True) -> None:
        # Sharing must be configured before the first program loads.
        self.sharing: Sharing = configure_sharing(share)
        self.foundation: Foundation = open_foundation(weights, tokenizer)
        self.baseline_rss_mib = sample(detailed=False).rss_mib
        self.sessions: dict[str, AdapterSession] = {}
        self.infos: dict[str, AdapterInfo] = {}
        self._replies: deque[Reply] = deque()

    # --- loading -------------------------------------------------------------------------

    def load(self, pte: Path, name: str | None = None) -> AdapterInfo:
        check_program_file(pte)
        manifest_name, entry = self.foundation.entry_for(pte)
        name = name or manifest_name
        if name in self.sessions:
            raise EngineError(f"{pte}: an adapter named '{name}' is already loaded")
        before = sample()
        started = time.perf_counter()
        module = load_module(pte, self.foundation.path)
        want = self.foundation.manifest.foundation_id
        got = read_constant(module, "get_foundation_id")
        if got != want:
            what = (
                "was not built by lora-export"
                if got is None
                else "was built for another foundation"
            )
            raise EngineError(f"{pte}: {what}, not {self.foundation.path}")
        embed = self.foundation.embeddings
        warm_up(module, embed, pte, self.foundation.path)
        limits = ProgramLimits.of(module)
        session = AdapterSession(name, module, embed, self.foundation.chat, limits)
        load_s = time.perf_counter() - started
        after = sample()
        info = AdapterInfo(
            name=name,
            path=str(pte),
            kind=entry.kind if entry else "adapter",
            rank=entry.rank if entry else None,
            target_modules=tuple(entry.target_modules) if entry else (),
            load_s=load_s,
            rss_before_mib=before.rss_mib,
            rss_after_mib=after.rss_mib,
            pss_after_mib=after.pss_mib,
            uss_after_mib=after.uss_mib,
            anon_increment_mib=(after.anon_mib - before.anon_mib)
            if after.anon_mib is not None and before.anon_mib is not None
            else None,
            breakdown=self._breakdown(pte, limits, entry),
        )
        self.sessions[name] = session
        self.infos[name] = info
        return info

    def _breakdown(
        self, pte: Path, limits: ProgramLimits, entry: ProgramEntry | None
    ) -> MemoryBreakdown:
        shape = self.foundation.manifest.shape
        kv_bytes = (
            2 * shape["n_layers"] * limits.max_context * shape["n_kv_heads"] * shape["head_dim"] * 4
        )
        program = pte.stat().st_size
        adapter = 0.0
        if entry and entry.rank and entry.target_modules:
            adapter = _lora_bytes(shape, entry.rank, entry.target_modules)
        return MemoryBreakdown(adapter / MIB, kv_bytes / MIB, program / MIB)

    def unload(self, name: str) -> list[Event]:
        events = self._stop_replies([name])
        self.sessions.pop(name, None)
        self.infos.pop(name, None)
        return events

    def _stop_replies(self, names: list[str] | None) -> list[Event]:
        """Cancel and finish the matching replies now; returns their final events."""
        events: list[Event] = []
        kept: deque[Reply] = deque()
        for reply in self._replies:
            if names is None or reply.session.name in names:
                reply.cancel()
                events.extend(reply.step())  # a cancelled reply finishes in one step
            else:
                kept.append(reply)
        self._replies = kept
        return events

    # --- generation ----------------------------------------------------------------------

    def start(self, names: list[str], text: str, settings: GenerationSettings) -> None:
        busy = {r.session.name for r in self._replies}
        for name in names:
            if name in self.sessions and name not in busy:
                self._replies.append(self.sessions[name].reply(text, settings))

    def cancel(self, names: list[str] | None = None) -> None:
        for reply in self._replies:
            if names is None or reply.session.name in names:
                reply.cancel()

    def clear(self, names: list[str] | None = None) -> list[Event]:
        """Forget the conversations (and stop their replies)."""
        events = self._stop_replies(names)
        for name, session in self.sessions.items():
            if names is None or name in names:
                session.clear()
        return events

    @property
    def busy(self) -> bool:
        return bool(self._replies)

    def step(self) -> list[Event]:
        """One unit of work for the next reply in turn (round-robin, token by token)."""
        if not self._replies:
            return []
        reply = self._replies.popleft()
        events = reply.step()
        if not reply.done(events):
            self._replies.append(reply)
        return events

    def generate(self, name: str, text: str, settings: GenerationSettings) -> Iterator[Event]:
        """Run one adapter's reply to the end, yielding its events (for scripts and benches)."""
        if name not in self.sessions:
            raise EngineError(f"no adapter named '{name}' is loaded")
        reply = self.sessions[name].reply(text, settings)
        while True:
            events = reply.step()
            yield from events
            if reply.done(events):
                return


def _lora_bytes(shape: dict, rank: int, targets: list[str]) -> float:
    llama = LlamaShape(**shape)
    per_layer = sum(rank * sum(llama.projection_shape(t)) for t in targets)
    return per_layer * llama.n_layers * 4
