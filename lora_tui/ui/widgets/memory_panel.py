"""Live memory: the whole tool's and the engine's RSS beside PSS, the tool's RSS over time,
sharing, and what each adapter added."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Sparkline, Static

from lora_tui.common.literal import literal, printable
from lora_tui.engine.memory import MemorySample
from lora_tui.engine.protocol import EngineReady
from lora_tui.engine.types import AdapterInfo, Sharing

HISTORY = 120  # samples kept for the sparkline
RSS_VS_PSS = (
    "×N: summed over N processes. +RSS: what RSS grew by at each load. RSS counts a "
    "foundation page once per program that maps it; true: what the adapter really added "
    "(PSS, which splits shared pages). MiB."
)


MemorySource = Callable[[], MemorySample | None]


class MemoryPanel(Vertical):
    class Sampled(Message):
        def __init__(self, engine: MemorySample | None, tool: MemorySample | None) -> None:
            super().__init__()
            self.engine, self.tool = engine, tool

    def __init__(self) -> None:
        super().__init__(id="memory")
        self.border_title = "Memory"
        self.history: deque[float] = deque(maxlen=HISTORY)
        self.sharing: Sharing | None = None
        self.threads_note: str | None = None  # the lanes' threads could not follow the work
        self.foundations: dict[str, float] = {}  # each foundation's file -> its MiB
        self.adapters: dict[str, AdapterInfo] = {}
        self.engine: MemorySample | None = None
        self.tool: MemorySample | None = None
        self._sources: tuple[MemorySource, MemorySource] = (lambda: None, lambda: None)

    def compose(self) -> ComposeResult:
        yield Static(id="memory-now")
        yield Sparkline([], id="rss-history")
        yield Static(RSS_VS_PSS, id="rss-vs-pss")
        yield Static(id="memory-sharing")
        yield Static(id="memory-adapters")

    def on_mount(self) -> None:
        self.refresh_view()

    def sample(self, engine: MemorySource, tool: MemorySource, interval_s: float) -> None:
        """Read both now and every ``interval_s``."""
        self._sources = engine, tool
        self._read()
        self.set_interval(interval_s, self._read)

    @work(thread=True, exclusive=True, group="memory")
    def _read(self) -> None:
        # Off the UI thread: reading every process's smaps takes milliseconds.
        engine, tool = self._sources
        self.post_message(self.Sampled(engine(), tool()))

    @on(Sampled)
    def _sampled(self, message: Sampled) -> None:
        self.record(message.engine, message.tool)

    def record(self, engine: MemorySample | None, tool: MemorySample | None) -> None:
        """The engine's processes (None before it starts) and the whole tool's: the app and
        every process under it (the engine, its lanes, the pre-flight checker, a build)."""
        # Every second: only the fixed-size parts change, so no layout pass is needed.
        self.engine, self.tool = engine, tool
        if tool is not None:
            self.history.append(tool.rss_mib)
            self.query_one(Sparkline).data = list(self.history)
        self._refresh_now()

    def engine_ready(self, ready: EngineReady) -> None:
        """An engine is up (one per foundation when several are open)."""
        self.sharing = ready.sharing
        self.threads_note = ready.threads_note or self.threads_note
        self.foundations[ready.foundation] = ready.foundation_mib
        self.refresh_view()

    def adapter_loaded(self, info: AdapterInfo) -> None:
        self.adapters[info.name] = info
        self.refresh_view()

    def adapter_removed(self, name: str) -> None:
        self.adapters.pop(name, None)
        self.refresh_view()

    def _refresh_now(self) -> None:
        now = Table(box=None, expand=True, padding=(0, 1), show_edge=False)
        now.add_column("", no_wrap=True)
        now.add_column("RSS", justify="right", no_wrap=True)
        now.add_column("PSS (true)", justify="right", no_wrap=True)
        for label, sample in (("whole tool", self.tool), ("engine", self.engine)):
            if sample is None:
                now.add_row(label, Text("—", "dim"), Text("—", "dim"))
                continue
            # Summed over several processes, RSS counts a page they share in each; PSS
            # splits it among them.
            count = f" ×{sample.processes}" if sample.processes > 1 else ""
            now.add_row(
                Text.assemble((label, "bold"), (count, "dim")),
                f"{sample.rss_mib:,.0f} MiB",
                f"{sample.pss_mib:,.0f} MiB" if sample.pss_mib else "n/a",
            )
        self.query_one("#memory-now", Static).update(now, layout=False)

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        self._refresh_now()

        sharing = Text()
        if self.sharing is None:
            sharing.append("weight sharing: starting…", "dim")
        elif self.sharing.enabled:
            sharing.append("weight sharing ON", "bold green")
        else:
            sharing.append("weight sharing OFF", "bold red")
            sharing.append(printable(f" — {self.sharing.detail}"))
        if self.foundations:
            packed = (
                "packed once for all adapters"
                if self.sharing and self.sharing.enabled
                else "packed again by every adapter"
            )
            lines = [self._foundation_line(path, mib) for path, mib in self.foundations.items()]
            if len(lines) == 1:
                sharing.append(printable(f"\nshared: {lines[0]}, {packed}"))
            else:  # each foundation's adapters share it, and only it
                sharing.append(f"\nshared, each {packed.replace('all', 'its')}:")
                sharing.append(printable("".join(f"\n  {line}" for line in lines)))
        if self.threads_note:
            sharing.append(printable(f"\n{self.threads_note}"), "yellow")
        self.query_one("#memory-sharing", Static).update(sharing)

        table = Table(box=None, expand=True, padding=(0, 1), show_edge=False)
        table.add_column("adapter", ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("+RSS", justify="right", no_wrap=True)
        table.add_column("true", justify="right", no_wrap=True)
        table.add_column("LoRA", justify="right", no_wrap=True)
        table.add_column("KV", justify="right", no_wrap=True)
        for info in self.adapters.values():
            true, breakdown = info.true_increment_mib, info.breakdown
            table.add_row(
                literal(info.name),
                f"{info.increment_mib:+.0f}",
                f"{true:+.0f}" if true is not None else "—",
                _known(breakdown.adapter_weights_mib),
                _known(breakdown.kv_cache_mib),
            )
        self.query_one("#memory-adapters", Static).update(table)

    def _foundation_line(self, path: str, mib: float) -> str:
        """``foundation.ptd 514 MiB (fp32)``; with several, each named by its folder."""
        where = Path(path)
        name = where.name if len(self.foundations) == 1 else where.parent.name
        size = f"{mib:,.0f}" if mib >= 10 else f"{mib:.1f}"
        over = [i for i in self.adapters.values() if i.foundation in (path, "")]
        quantized = {i.quantization for i in over} - {None}
        kind = f" ({quantized.pop()})" if len(quantized) == 1 else ""
        return f"{name} {size} MiB{kind}"


def _known(mib: float | None) -> str:
    return f"{mib:.1f}" if mib is not None else "?"
