"""The palette's questions: programs to load (over a foundation open or a new one), a
prompt set to run, and the settings they change (the app's temperature, reply length and
thinking switch, a pane's own temperature or seed).

Each answer is checked (``settings.py``); one that is not valid is a notice saying what is
allowed. Esc changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lora_tui.ui.opening import parse_paths
from lora_tui.ui.screens.ask import AskScreen
from lora_tui.ui.settings import (
    parse_max_tokens,
    parse_pane_temperature,
    parse_seed,
    parse_temperature,
)

if TYPE_CHECKING:
    from lora_tui.ui.workbench import Workbench

T = TypeVar("T")


def ask(
    app: Workbench,
    screen: AskScreen,
    parse: Callable[[str], T],
    apply: Callable[[T], object],
    empty_too: bool = False,
) -> None:
    """Ask in a dialog; ``parse`` the answer and ``apply`` it, or say in a notice why it is
    not valid. Esc (and an empty answer, unless ``empty_too``) changes nothing."""

    def answered(answer: str | None) -> None:
        if answer is None or (not answer and not empty_too):
            return
        try:
            value = parse(answer)
        except ValueError as err:
            app.notify(str(err), severity="error")
            return
        apply(value)

    app.push_screen(screen, answered)


class SettingsDialogs:
    def __init__(self, app: Workbench) -> None:
        self.app = app

    def temperature(self) -> None:
        ask(
            self.app,
            AskScreen("Temperature (0 = greedy):", str(self.app.settings.temperature)),
            parse_temperature,
            lambda value: self.update(temperature=value),
        )

    def max_tokens(self) -> None:
        ask(
            self.app,
            AskScreen("Max new tokens per reply:", str(self.app.settings.max_new_tokens)),
            parse_max_tokens,
            lambda value: self.update(max_new_tokens=value),
        )

    def pane_setting(self, setting: str) -> None:
        """The selected pane's own temperature or seed (empty: back to the app's)."""
        pane = self.app.selected_pane
        if pane is None:
            return
        question = {
            "temperature": f"Temperature for {pane.shown_name} only (0 = greedy; empty: the "
            f"app's, {self.app.settings.temperature}):",
            "seed": f"Seed for {pane.shown_name} (the same seed repeats a sampled reply; "
            "empty: a new one each reply):",
        }[setting]
        parse = parse_pane_temperature if setting == "temperature" else parse_seed
        ask(
            self.app,
            AskScreen(question, str(pane.overrides.get(setting, ""))),
            lambda answer: parse(answer) if answer else None,
            lambda value: pane.set_override(setting, value),
            empty_too=True,
        )

    def program(self, load: Callable[[list[Path]], object], foundation: bool = False) -> None:
        """Programs to open in new panes; with ``foundation``, a foundation first."""
        if foundation:
            question = "Open another foundation (.ptd), then the programs over it:"
            placeholder = "path/to/foundation.ptd path/to/adapter.pte …"
        else:
            question = "Load adapter programs (.pte) over a foundation already open:"
            placeholder = "path/to/adapter.pte …"
        ask(self.app, AskScreen(question, placeholder=placeholder), parse_paths, load)

    def prompt_set(self, run: Callable[[Path], object]) -> None:
        """A prompt set to run through every pane."""
        question = "Run a prompt set (JSON Lines, as lora-tui eval reads) through every pane:"
        screen = AskScreen(question, placeholder="path/to/prompts.jsonl")
        ask(self.app, screen, lambda answer: Path(answer).expanduser(), run)

    def toggle_thinking(self) -> None:
        self.update(thinking=not self.app.settings.thinking)

    def update(self, **changes: float | int | bool) -> None:
        settings = self.app.settings = replace(self.app.settings, **changes)
        thinking = f", thinking {'on' if settings.thinking else 'off'}" if self.can_think() else ""
        self.app.notify(
            f"temperature {settings.temperature}, max new tokens {settings.max_new_tokens}"
            + thinking,
            title="settings",
        )

    def can_think(self) -> bool:
        """Some loaded model has a thinking switch in its template (Qwen3)."""
        return any(p.info is not None and p.info.can_think for p in self.app.panes.values())
