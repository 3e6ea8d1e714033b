"""The palette's questions: programs to load (over a foundation open or a new one), a
prompt set to run, and the settings they change (the session's temperature, reply length
and thinking switch, a pane's own temperature or seed).

Each answer is checked (``settings.py``); one that is not valid is a notice saying what is
allowed. Esc changes nothing. The dialogs are handed how to show a question and a notice,
never the app, and change only the session's settings or the pane they are asked about."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from lora_tui.ui.opening import parse_paths
from lora_tui.ui.screens.ask import AskScreen
from lora_tui.ui.session import Session
from lora_tui.ui.settings import (
    parse_adapter_scale,
    parse_max_tokens,
    parse_pane_temperature,
    parse_seed,
    parse_temperature,
)
from lora_tui.ui.widgets.adapter_pane import AdapterPane

T = TypeVar("T")
# Shows a question's screen and calls back with its answer (None: Esc): ``push_screen``.
Show = Callable[[AskScreen, Callable[[str | None], None]], Any]


def can_think(panes: Iterable[AdapterPane]) -> bool:
    """Some loaded model has a thinking switch in its template (Qwen3)."""
    return any(p.info is not None and p.info.can_think for p in panes)


class Dialogs:
    def __init__(
        self,
        show: Show,
        notify: Callable[..., None],
        session: Session,
        panes: Mapping[str, AdapterPane],
    ) -> None:
        """``show`` a question's screen, ``notify`` what was changed or refused; ``panes``:
        the main screen's."""
        self.show, self.notify, self.session, self.panes = show, notify, session, panes

    def ask(
        self,
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
                self.notify(str(err), severity="error")  # text, not markup (notices.py)
                return
            apply(value)

        self.show(screen, answered)

    def temperature(self) -> None:
        current = self.session.settings.temperature
        self.ask(
            AskScreen("Temperature (0 = greedy):", str(current)),
            parse_temperature,
            lambda value: self.update(temperature=value),
        )

    def max_tokens(self) -> None:
        current = self.session.settings.max_new_tokens
        self.ask(
            AskScreen("Max new tokens per reply:", str(current)),
            parse_max_tokens,
            lambda value: self.update(max_new_tokens=value),
        )

    def pane_setting(self, pane: AdapterPane | None, setting: str) -> None:
        """A pane's own temperature or seed (empty: back to the session's)."""
        if pane is None:
            return
        question = {
            "temperature": f"Temperature for {pane.shown_name} only (0 = greedy; empty: the "
            f"app's, {self.session.settings.temperature}):",
            "seed": f"Seed for {pane.shown_name} (the same seed repeats a sampled reply; "
            "empty: a new one each reply):",
        }[setting]
        parse = parse_pane_temperature if setting == "temperature" else parse_seed
        self.ask(
            AskScreen(question, str(pane.overrides.get(setting, ""))),
            lambda answer: parse(answer) if answer else None,
            lambda value: pane.set_override(setting, value),
            empty_too=True,
        )

    def programs(self, load: Callable[[list[Path]], object], foundation: bool = False) -> None:
        """Programs to open in new panes; with ``foundation``, a foundation first."""
        if foundation:
            question = "Open another foundation (.ptd), then the programs over it:"
            placeholder = "path/to/foundation.ptd path/to/adapter.pte …"
        else:
            question = "Load adapter programs (.pte) over a foundation already open:"
            placeholder = "path/to/adapter.pte …"
        self.ask(AskScreen(question, placeholder=placeholder), parse_paths, load)

    def adapter_scale(self, selected: str | None, open_at: Callable[[str, float], object]) -> None:
        """An adapter open and a LoRA scale to open it at in a pane of its own."""
        question = (
            "Open an adapter at another LoRA scale (0 is the base, 1 the adapter as "
            "trained): ADAPTER SCALE"
        )
        screen = AskScreen(question, f"{selected} 0.5" if selected else "", "nobel 0.5")
        self.ask(
            screen,
            lambda answer: parse_adapter_scale(answer, self.panes),
            lambda chosen: open_at(*chosen),
        )

    def prompt_set(self, run: Callable[[Path], object]) -> None:
        """A prompt set to run through every pane."""
        question = "Run a prompt set (JSON Lines, as lora-tui eval reads) through every pane:"
        screen = AskScreen(question, placeholder="path/to/prompts.jsonl")
        self.ask(screen, lambda answer: Path(answer).expanduser(), run)

    def toggle_thinking(self) -> None:
        self.update(thinking=not self.session.settings.thinking)

    def update(self, **changes: float | int | bool) -> None:
        """Change the session's settings and say what they are now (the thinking switch too,
        when some model has one)."""
        settings = self.session.settings = replace(self.session.settings, **changes)
        shown = can_think(self.panes.values())
        thinking = f", thinking {'on' if settings.thinking else 'off'}" if shown else ""
        self.notify(
            f"temperature {settings.temperature}, max new tokens {settings.max_new_tokens}"
            + thinking,
            title="settings",
        )
