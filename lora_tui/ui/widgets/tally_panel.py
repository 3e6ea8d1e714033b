"""The session's blind votes per adapter: wins, ties, losses, "all bad" and an Elo rating."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from lora_tui.common.literal import literal
from lora_tui.judging.arena import Tally

EXPLAINED = (
    "Names stay hidden and the panes are shuffled for every prompt; they are revealed "
    "after your vote. Elo starts at 1000 (K=32); a tie or all bad is a draw."
)


class TallyPanel(Vertical):
    def __init__(self) -> None:
        super().__init__(id="tally")
        self.border_title = "Blind votes"

    def compose(self) -> ComposeResult:
        yield Static(EXPLAINED, id="tally-explained")
        yield Static(id="tally-table")

    def show(self, tally: Tally) -> None:
        if not tally.votes:
            self.query_one("#tally-table", Static).update(Text("no votes yet", "dim"))
            return
        table = Table(box=None, expand=True, padding=(0, 1), show_edge=False)
        table.add_column("adapter", ratio=1, no_wrap=True, overflow="ellipsis")
        for heading in ("W", "T", "L", "bad", "Elo"):
            table.add_column(heading, justify="right", no_wrap=True)
        for s in tally.ranked():
            row = (s.wins, s.ties, s.losses, s.all_bad, f"{s.elo:.0f}")
            table.add_row(literal(s.adapter), *map(str, row))
        self.border_subtitle = f"{tally.votes} vote{'s' if tally.votes != 1 else ''}"
        self.query_one("#tally-table", Static).update(table)
