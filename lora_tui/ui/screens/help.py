"""F1: every key, built from the app's real bindings (their tooltips say what they do)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import key_to_character
from textual.screen import ModalScreen
from textual.widgets import Static

from lora_tui.ui.widgets.departure import legend

KEY_NAMES = {"escape": "Esc", "enter": "Enter", "tab": "Tab"}
STATUS_LINE = (
    "A pane's status line: TTFT (time to its first token), then that reply's own decode speed "
    "in tok/s, while it shared the machine. When several panes answered one prompt at the "
    "same time, 'N together' follows: their speeds summed, what the machine gave them all "
    "(panes opened together answer in processes of their own, a share of the cores each). "
    "'N left out': the oldest messages of its conversation that no longer fit the context; "
    "the pane still shows them but no longer sends them. With a base program open, 'same as "
    "base' or 'departs from base at token N' says where the reply first left the base's own."
)


def key_label(key: str) -> str:
    """'ctrl+b' -> 'Ctrl+B', 'question_mark' -> '?', 'escape' -> 'Esc'."""
    *modifiers, name = key.split("+")
    character = key_to_character(name)
    shown = KEY_NAMES.get(name) or (
        character.upper() if character and character.isalnum() else character or name.title()
    )
    return "+".join([*(m.title() for m in modifiers), shown])


def _compact(labels: list[str]) -> str:
    """'Alt+1 … Alt+9, 1 … 9' as 'Alt+1…9 / 1…9', 'A … I' as 'A…I': runs of one prefix and
    a digit or a capital letter."""
    runs: dict[str, list[str]] = {}
    for label in labels:
        prefix, digit = re.fullmatch(r"(.*?)([\dA-Z]?)", label).groups()  # type: ignore[union-attr]
        runs.setdefault(prefix, []).append(digit)
    parts = []
    for prefix, digits in runs.items():
        if len(digits) > 2 and all(digits):
            parts.append(f"{prefix}{digits[0]}…{digits[-1]}")
        else:
            parts.append(" / ".join(prefix + d for d in digits))
    return " / ".join(parts)


def help_rows(
    bindings: Iterable[Binding], unbound: Iterable[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """(keys, what they do) rows: bindings with the same text, or in one group, share a row."""
    rows: dict[str, list[str]] = {}
    for binding in bindings:
        text = binding.group.description if binding.group else binding.tooltip
        if text:
            keys = [key_label(key.strip()) for key in binding.key.split(",")]
            rows.setdefault(text, []).extend(keys)
    listed = [(_compact(keys), text) for text, keys in rows.items()]
    return [*unbound, *listed]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close")]

    def __init__(
        self, bindings: Iterable[Binding], unbound: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__()
        self.rows = help_rows(bindings, unbound)

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2), show_header=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for keys, description in self.rows:
            table.add_row(Text(keys), Text(description))  # "[" is a key, not markup
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Keys"
            body.border_subtitle = "Esc closes · Ctrl+P opens the command palette"
            yield Static(table)
            yield Static(STATUS_LINE, id="help-status-line")
            yield Static(legend(), id="help-departure-legend")
