"""The main screen: adapter panes, the memory panel and the prompt."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container, Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input

from lora_tui.ui.widgets.adapter_pane import AdapterPane
from lora_tui.ui.widgets.memory_panel import MemoryPanel
from lora_tui.ui.widgets.prompt_bar import PromptBar
from lora_tui.ui.widgets.tally_panel import TallyPanel
from lora_tui.ui.widgets.vote_bar import VoteBar

PANE_MIN_WIDTH = 36


class MainScreen(Screen):
    # A maximized pane still shows the prompt, so the conversation can go on.
    ALLOW_IN_MAXIMIZED_VIEW = "Header, Footer, PromptBar, VoteBar"

    class Ready(Message):
        """Posted once the layout exists, so the app can start the engine into it."""

    class Resized(Message):
        """The terminal changed size; posted after the refresh, so the layout is new."""

    def on_mount(self) -> None:
        self.post_message(self.Ready())

    def on_resize(self) -> None:
        self.call_after_refresh(self.post_message, self.Resized())

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield Container(id="panes")
            yield MemoryPanel()
            yield TallyPanel()  # in place of the memory panel in blind mode: it names adapters
        yield VoteBar()
        yield PromptBar()
        yield Footer()

    @property
    def prompt(self) -> Input:
        return self.query_one("#prompt", Input)

    @property
    def memory_panel(self) -> MemoryPanel:
        return self.query_one(MemoryPanel)

    def show_target(self, broadcast: bool, selected: str | None) -> None:
        """Where the next prompt goes: every pane, or the selected one."""
        self.query_one(PromptBar).show_target(broadcast, selected)

    def put_prompt(self, text: str) -> None:
        """Put ``text`` in the prompt, ready to edit or send."""
        self.prompt.value = text
        self.prompt.cursor_position = len(text)
        self.prompt.focus()

    def show_panes(self, panes: list[AdapterPane], selected: int) -> None:
        """Show ``panes`` in this order: grid columns for the width, numbers, the selection.
        After panes come, go or move, or the terminal resizes."""
        grid = self.query_one("#panes")
        for index, pane in enumerate(panes):
            if grid.children[index] is not pane:
                grid.move_child(pane, before=index)
        width = grid.size.width or self.app.size.width
        columns = max(1, min(len(panes), width // PANE_MIN_WIDTH)) if panes else 1
        if grid.styles.grid_size_columns != columns:
            grid.styles.grid_size_columns = columns
        for index, pane in enumerate(panes):
            pane.set_index(index + 1)
        self.mark_selected(panes, selected)

    def mark_selected(self, panes: list[AdapterPane], selected: int) -> None:
        """Only the selection: what a Tab changes, with no look at the grid."""
        for index, pane in enumerate(panes):
            pane.selected = index == selected
