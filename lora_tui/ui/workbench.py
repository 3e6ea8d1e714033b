"""The app as its features see it. Blind mode, replies and prompt sets hold a ``Workbench``,
not the app class, so no feature imports the app and the app imports each feature one way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from textual.screen import Screen

    from lora_tui.engine.protocol import EngineClient
    from lora_tui.engine.types import GenerationSettings
    from lora_tui.ui.screens.main import MainScreen
    from lora_tui.ui.widgets.adapter_pane import AdapterPane


class Workbench(Protocol):
    panes: dict[str, AdapterPane]  # in the order they show
    main: MainScreen
    broadcast: bool  # every pane answers (True) or the selected one
    settings: GenerationSettings  # the app's; a pane's own override them
    sub_title: str

    @property
    def engine(self) -> EngineClient | None:
        """None once it kept stopping and was not started again."""

    @property
    def selected_pane(self) -> AdapterPane | None: ...

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A notification, its message shown as written (``ui/notices.py``)."""

    def push_screen(
        self, screen: Screen[Any], callback: Callable[[Any], object] | None = None
    ) -> Any: ...

    async def action_clear(self) -> None:
        """Forget every conversation, in the panes and the engine."""

    def reorder(self, names: list[str]) -> None:
        """Show the panes in this order."""

    def focus_prompt(self) -> None: ...

    async def add_program(self, path: Path, name: str | None = None) -> None:
        """A pane for the program (named ``name``, else its file's), loaded by the engine."""
