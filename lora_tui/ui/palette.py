"""The command palette's lora-tui commands, as a Textual ``Provider``: loading and
unloading programs, settings, blind mode and judging, results, transcripts and the demo's
suggested questions.

Each command calls what it does directly: an action of the main screen (the one its key
runs, if it has a key), one of its dialogs, or an app-wide action. A new command is one more
``Command`` here, beside the screen's method it calls. Titles and help name adapters (files'
names) and prompts: they are shown as written, never as markup."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from lora_tui.common.literal import printable
from lora_tui.judging.results import EXPORT_FORMATS
from lora_tui.ui.screens.dialogs import can_think
from lora_tui.ui.screens.main import MainScreen


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    run: Callable[[], object]  # called as it is; the palette awaits what it returns


FORMAT_NAMES = {"md": "Markdown", "json": "JSON", "csv": "CSV"}


def main_screen_commands(screen: MainScreen) -> list[Command]:
    """What the palette offers now: unload and thinking depend on what is loaded, and blind
    mode hides the commands that name adapters."""
    return [*_pane_commands(screen), *_session_commands(screen), *_suggestions(screen)]


def _pane_commands(screen: MainScreen) -> list[Command]:
    pane = screen.selected_pane
    selected = pane.shown_name if pane else "the selected pane"
    dialogs, blind = screen.dialogs, screen.blind.on
    return [
        Command("Load adapter program", "Add a .pte over a foundation open", screen.load_programs),
        Command(
            "Open foundation",
            "Another .ptd and programs over it, beside the others (another quantization)",
            partial(screen.load_programs, foundation=True),
        ),
        *(
            []
            if blind
            else [
                Command(
                    "Open at scale…",
                    "An adapter open, at another LoRA strength in a pane of its own "
                    "(0 is the base, 1 the adapter)",
                    screen.open_at_scale,
                )
            ]
        ),
        *(
            Command(f"Unload {name}", f"Free {name}'s memory", partial(screen.unload, name))
            for name in ([] if blind else list(screen.panes))
        ),
        Command(
            f"Blind mode {'off' if blind else 'on'}",
            "Hide names, shuffle the panes per prompt, vote, then reveal (F3)",
            screen.action_toggle_blind,
        ),
        Command(
            "Diff answers",
            "Word diff of the selected pane's answer with another's (F4)",
            screen.action_diff,
        ),
        *_base_commands(screen),
        Command(
            "Regenerate selected",
            f"Answer the last prompt again in {selected} (Ctrl+R)",
            partial(screen.action_regenerate, False),
        ),
        Command(
            "Regenerate all",
            "Answer the last prompt again in every pane (F5)",
            partial(screen.action_regenerate, True),
        ),
        Command(
            f"Set temperature for {selected}",
            "This pane's own temperature, over the app's",
            partial(dialogs.pane_setting, pane, "temperature"),
        ),
        Command(
            f"Set seed for {selected}",
            "A fixed seed makes a sampled reply repeat on regenerate",
            partial(dialogs.pane_setting, pane, "seed"),
        ),
    ]


def _base_commands(screen: MainScreen) -> list[Command]:
    """The departure view, and the selected pane as the base (not in blind mode: it would
    name the pane)."""
    commands = [
        Command(
            f"Departure view {'off' if screen.departure_view else 'on'}",
            "Shade each last reply by how unlikely the base found each token (F6)",
            screen.action_toggle_departure,
        )
    ]
    if (pane := screen.selected_pane) is not None and not screen.blind.on:
        commands.append(
            Command(
                f"Use {pane.shown_name} as base",
                "Score the other panes' replies against this program from the next reply",
                partial(screen.use_as_base, pane),
            )
        )
    return commands


def _session_commands(screen: MainScreen) -> list[Command]:
    dialogs, settings = screen.dialogs, screen.session.settings
    commands = [
        Command(
            "Run prompt set…",
            "Every prompt of a JSONL file through all panes, then the scores",
            screen.run_prompt_set,
        ),
        *(
            Command(
                f"Export results as {FORMAT_NAMES[fmt]}",
                "Every answer with its vote, and the tally, next to the results file",
                partial(screen.export_results, fmt),
            )
            for fmt in EXPORT_FORMATS
        ),
        Command("Clear conversations", "Forget every conversation", screen.action_clear),
        Command(
            "Save transcript",
            "Write all conversations as Markdown",
            partial(screen.app.run_action, "save_transcript"),  # the app's, as Ctrl+S
        ),
        Command(
            "Toggle broadcast",
            "Send to all adapters or the selected one",
            screen.action_toggle_broadcast,
        ),
        Command("Set temperature", "0 is greedy", dialogs.temperature),
        Command("Set max new tokens", "Longest reply, in tokens", dialogs.max_tokens),
        Command("Copy last reply", "The selected adapter's last reply", screen.copy_last_reply),
    ]
    if can_think(screen.panes.values()):
        commands.append(
            Command(
                f"Toggle thinking (now {'on' if settings.thinking else 'off'})",
                "Let a model with a thinking switch (Qwen3) think before it answers",
                dialogs.toggle_thinking,
            )
        )
    return commands


def _suggestions(screen: MainScreen) -> list[Command]:
    return [
        Command(
            f"Ask: {prompt}",
            f"A question the {name} adapter was trained for",
            partial(screen.put_prompt, prompt),
        )
        for name, prompts in screen.session.suggestions.items()
        for prompt in prompts
    ]


def highlighted(matcher: Matcher, text: str) -> Content:
    """``text`` as it is, its characters that match the query marked (Textual's own
    ``Matcher.highlight`` reads it as markup)."""
    shown = Content(text)
    _, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for offset in offsets:
        if not text[offset].isspace():
            shown = shown.stylize(matcher.match_style, offset, offset + 1)
    return shown


def help_text(command: Command) -> Any:
    """A command's help as text: the palette reads a str as markup, and takes ``Content``
    as it is (``Content.from_markup`` returns it unchanged)."""
    return Content(printable(command.help))


class LoraTuiCommands(Provider):
    def _commands(self) -> list[Command]:
        screen = self.screen  # the screen the palette was opened over
        return main_screen_commands(screen) if isinstance(screen, MainScreen) else []

    async def discover(self) -> Hits:
        for command in self._commands():
            shown = Content(printable(command.title))
            yield DiscoveryHit(shown, command.run, shown.plain, help_text(command))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            title = printable(command.title)
            score = matcher.match(title)
            if score > 0:
                shown = highlighted(matcher, title)
                yield Hit(score, shown, command.run, title, help_text(command))
