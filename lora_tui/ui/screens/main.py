"""The main screen: adapter panes, the memory panel and the prompt."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container, Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header

from lora_tui.ui.widgets.memory_panel import MemoryPanel
from lora_tui.ui.widgets.prompt_bar import PromptBar
from lora_tui.ui.widgets.tally_panel import TallyPanel
from lora_tui.ui.widgets.vote_bar import VoteBar


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
