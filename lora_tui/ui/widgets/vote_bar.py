"""Blind mode's vote: once every anonymous answer is in, a key picks the better one, a
tie or "all bad" (Esc skips). It posts ``Voted``; the main screen reveals the names."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from lora_tui.judging.arena import ALL_BAD, LABELS, TIE
from lora_tui.judging.blind import MAX_ADAPTERS

VOTE_FOR = Binding.Group("blind mode: vote for answer A, B, … (once all have answered)")


class VoteBar(Static):
    BINDINGS = [
        *[
            Binding(letter.lower(), f"vote({index})", show=False, group=VOTE_FOR)
            for index, letter in enumerate(LABELS[:MAX_ADAPTERS])
        ],
        Binding("t", f"vote('{TIE}')", "Tie", tooltip="blind mode: vote a tie"),
        Binding("x", f"vote('{ALL_BAD}')", "All bad", tooltip="blind mode: vote all bad"),
        Binding("escape", "vote(None)", "Skip", tooltip="blind mode: skip the vote, reveal"),
    ]

    class Voted(Message):
        """``choice``: the index of the pane voted for, ``TIE``, ``ALL_BAD``, or None (skip)."""

        def __init__(self, choice: int | str | None) -> None:
            super().__init__()
            self.choice = choice

    def __init__(self) -> None:
        super().__init__(id="vote-bar")
        self.panes = 0  # how many answers there are to vote for

    def ask(self, panes: int) -> None:
        letters = "  ".join(f"[b]{c.lower()}[/] {c} better" for c in LABELS[:panes])
        self.panes = panes
        self.update(f"Which is better?  {letters}  [b]t[/] tie  [b]x[/] all bad  [b]Esc[/] skip")
        self.add_class("-open")
        self.can_focus = True  # only while open: it must never take the prompt's focus
        self.focus()

    def close(self) -> None:
        self.remove_class("-open")
        self.can_focus = False

    def action_vote(self, choice: int | str | None) -> None:
        if isinstance(choice, int) and choice >= self.panes:
            self.app.bell()
            return
        self.post_message(self.Voted(choice))
