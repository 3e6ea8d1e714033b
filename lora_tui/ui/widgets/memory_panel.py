"""Live memory: the whole tool's RSS beside PSS and what holds it (the foundation's file pages,
its packed weights, the runtime, each adapter's own, the app), the engine's, the tool's RSS
over time, sharing, and what each adapter added at its load."""

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
from lora_tui.engine.memory import PACKING, Holding, MemorySample, Share, ToolLayout, ToolMemory
from lora_tui.engine.protocol import EngineReady, FoundationPacked
from lora_tui.engine.types import AdapterInfo, Sharing

HISTORY = 120  # samples kept for the sparkline
RSS_VS_PSS = (
    "×N: N processes. RSS counts shared pages in each; PSS splits them (true). "
    "true: +PSS at load; now: held now."
)


MemorySource = Callable[[], MemorySample | None]
# The whole tool's memory by what holds it, given where the engine said things are.
ToolSource = Callable[[ToolLayout], ToolMemory | None]


class MemoryPanel(Vertical):
    class Sampled(Message):
        def __init__(
            self,
            engine: MemorySample | None,
            tool: ToolMemory | None,
            layout: ToolLayout,
            periodic: bool,
        ) -> None:
            super().__init__()
            self.engine, self.tool, self.layout = engine, tool, layout
            self.periodic = periodic  # one of the interval's samples, not a load's

    def __init__(self) -> None:
        super().__init__(id="memory")
        self.border_title = "Memory"
        self.history: deque[float] = deque(maxlen=HISTORY)
        self.sharing: Sharing | None = None
        self.threads_note: str | None = None  # the lanes' threads could not follow the work
        self.foundations: dict[str, float] = {}  # each foundation's file -> its MiB
        self.adapters: dict[str, AdapterInfo] = {}
        self.packings: dict[str, FoundationPacked] = {}  # each foundation's, by its file
        self.engine: MemorySample | None = None
        self.tool: ToolMemory | None = None
        # What the sampling thread attributes memory by: replaced whole on the UI thread.
        self.tool_layout = ToolLayout()
        self._sources: tuple[MemorySource, ToolSource] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="memory-now")
        yield Sparkline([], id="rss-history")
        yield Static(RSS_VS_PSS, id="rss-vs-pss")
        yield Static(id="memory-sharing")
        yield Static(id="memory-adapters")

    def on_mount(self) -> None:
        self.refresh_view()

    def sample(self, engine: MemorySource, tool: ToolSource, interval_s: float) -> None:
        """Read both now and every ``interval_s``."""
        self._sources = engine, tool
        self._read()
        self.set_interval(interval_s, self._read)

    @work(thread=True, group="memory")
    def _read(self, periodic: bool = True) -> None:
        # Off the UI thread: reading every process's smaps takes tens of milliseconds.
        if self._sources is None:
            return
        engine, tool = self._sources
        layout = self.tool_layout
        self.post_message(self.Sampled(engine(), tool(layout), layout, periodic))

    @on(Sampled)
    def _sampled(self, message: Sampled) -> None:
        if message.periodic and message.tool is not None:  # the history: one per interval
            self.history.append(message.tool.total.rss_mib)
            self.query_one(Sparkline).data = list(self.history)
        if message.layout is self.tool_layout:  # else read before a load or an unload,
            self.record(message.engine, message.tool)  # and the read after it comes next

    def record(self, engine: MemorySample | None, tool: ToolMemory | None) -> None:
        """The engine's processes (None before it starts) and the whole tool's: the app and
        every process under it (the engine, its lanes, the pre-flight checker, a build), by
        what holds it."""
        self.engine, self.tool = engine, tool
        self._refresh_now()
        self._refresh_adapters(layout=False)  # the same rows: only "now" changed

    def engine_ready(self, ready: EngineReady) -> None:
        """An engine is up (one per foundation when several are open)."""
        self.sharing = ready.sharing
        self.threads_note = ready.threads_note or self.threads_note
        self.foundations[ready.foundation] = ready.foundation_mib
        self.refresh_view()

    def foundation_packed(self, packed: FoundationPacked) -> None:
        """An engine's worker packed its foundation (again, after a restart)."""
        self.packings[packed.foundation] = packed
        self._relayout()

    def adapter_loaded(self, info: AdapterInfo) -> None:
        self.adapters[info.name] = info
        self._relayout()
        self.refresh_view()

    def adapter_removed(self, name: str) -> None:
        self.adapters.pop(name, None)
        self._relayout()
        self.refresh_view()

    def _relayout(self) -> None:
        packings = self.packings.values()
        holdings = [Holding(PACKING, p.process, p.ranges) for p in packings]
        holdings += [
            Holding(info.name, info.process, info.ranges, info.heap_mib * 1024)
            for info in self.adapters.values()
            if info.process is not None
        ]
        self.tool_layout = ToolLayout(tuple(holdings))
        self._read(periodic=False)  # what the new layout names, without waiting

    def _refresh_now(self) -> None:
        now = Table(box=None, expand=True, padding=(0, 1), show_edge=False)
        now.add_column("", ratio=1, no_wrap=True, overflow="ellipsis")
        now.add_column("RSS MiB", justify="right", no_wrap=True)
        now.add_column("PSS MiB", justify="right", no_wrap=True)
        tool, engine = self.tool, self.engine
        # Summed over several processes, RSS counts a page they share in each; PSS splits
        # it among them.
        if tool is None:
            now.add_row(Text("whole tool", "bold"), Text("—", "dim"), Text("—", "dim"))
        else:
            now.add_row(*_total_row("whole tool", tool.processes, tool.total))
            for label, share in _parts(tool):
                now.add_row(label, f"{share.rss_mib:,.0f}", f"{share.pss_mib:,.0f}")
        if engine is None:
            now.add_row(Text("engine", "bold"), Text("—", "dim"), Text("—", "dim"))
        else:
            pss = Share(engine.rss_mib, engine.pss_mib or 0.0)
            now.add_row(*_total_row("engine", engine.processes, pss, known=bool(engine.pss_mib)))
        shown = self.query_one("#memory-now", Static)
        rows = now.row_count + 1  # and the header
        # Every second only the figures change: a layout pass only when the rows do.
        if shown.styles.height is None or shown.styles.height.value != rows:
            shown.styles.height = rows
            shown.update(now)
        else:
            shown.update(now, layout=False)

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
        self._refresh_adapters()

    def _refresh_adapters(self, layout: bool = True) -> None:
        """Each adapter: what PSS grew by at its load (true), what it holds now (its load's
        pages: KV cache, LoRA weights, buffers), and its LoRA weights and KV cache as the
        manifest sizes them."""
        table = Table(box=None, expand=True, padding=(0, 1), show_edge=False)
        table.add_column("adapter", ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("true", justify="right", no_wrap=True)
        table.add_column("now", justify="right", no_wrap=True)
        table.add_column("LoRA", justify="right", no_wrap=True)
        table.add_column("KV", justify="right", no_wrap=True)
        for info in self.adapters.values():
            true, breakdown = info.true_increment_mib, info.breakdown
            now = self.tool.adapter(info.name) if self.tool is not None else None
            table.add_row(
                literal(info.name),
                f"{true:+.0f}" if true is not None else "—",
                f"{now.pss_mib:.0f}" if now is not None else Text("—", "dim"),
                _known(breakdown.adapter_weights_mib),
                _known(breakdown.kv_cache_mib),
            )
        self.query_one("#memory-adapters", Static).update(table, layout=layout)

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


def _total_row(label: str, processes: int, share: Share, known: bool = True) -> list:
    count = f" ×{processes}" if processes > 1 else ""
    return [
        Text.assemble((label, "bold"), (count, "dim")),
        f"{share.rss_mib:,.0f}",
        f"{share.pss_mib:,.0f}" if known else "n/a",
    ]


def _parts(tool: ToolMemory) -> list[tuple[Text, Share]]:
    """What holds the whole tool's memory, a row each (each adapter's in the table below)."""
    parts = [
        ("foundation file", tool.foundation_file),  # the .ptd's pages still mapped
        ("packed weights", tool.packed_weights),
        ("runtime", tool.runtime),  # libraries and interpreters
        ("adapters (now)", tool.adapters_total),
        ("other programs", tool.other_programs),  # outputs, the departure scorer
        ("app", tool.app),
        ("helpers", tool.helpers),  # the pre-flight check, a build
    ]
    return [(Text(f"  {label}"), share) for label, share in parts]
