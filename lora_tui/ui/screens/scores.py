"""After "Run prompt set…": the tables ``lora-tui eval`` prints, totals first."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from lora_tui.common.literal import literal
from lora_tui.judging.evaluate import EvalReport, report_tables


class ScoresScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, report: EvalReport, title: str) -> None:
        super().__init__()
        self.report, self.title_text = report, title

    def compose(self) -> ComposeResult:
        *details, totals = report_tables(self.report)
        with VerticalScroll(id="scores-body") as body:
            body.border_title = literal(self.title_text)  # the prompt set's file name
            body.border_subtitle = "Esc closes · every answer is in the results file"
            for table in (totals, *details):
                yield Static(table)
