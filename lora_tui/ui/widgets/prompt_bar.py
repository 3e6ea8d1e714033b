"""The prompt: where a message is typed, and where it will go."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label

from lora_tui.common.literal import literal, printable


class PromptBar(Horizontal):
    def compose(self) -> ComposeResult:
        yield Label("→ all", id="target")
        yield Input(placeholder="Ask every adapter…  (Enter sends, F1 help)", id="prompt")

    def show_target(self, broadcast: bool, selected: str | None) -> None:
        label = literal("→ all" if broadcast else f"→ {selected or 'none'}")  # a file's name
        target = self.query_one("#target", Label)
        if str(target.content) != label.plain:
            target.update(label, layout=False)  # fixed width: no layout pass needed
        where = "every adapter" if broadcast else (selected or "the selected adapter")
        self.query_one(Input).placeholder = printable(f"Ask {where}…  (Enter sends, F1 help)")
