"""The command palette's lora-tui commands, as a Textual ``Provider``: loading and
unloading programs, settings, blind mode and judging, results, transcripts and the demo's
suggested questions.

Each command is an action string the app runs, as a key binding's is; the list is built from
a ``PaletteState`` the app hands over, so nothing here reaches into the app. Titles and help
name adapters (files' names) and prompts: they are shown as written, never as markup."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from lora_tui.common.literal import printable
from lora_tui.judging.results import EXPORT_FORMATS


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    action: str  # as in a Binding: "diff", "regenerate(False)", "unload('nobel')"


@dataclass(frozen=True)
class PaletteState:
    """What the palette's list depends on, as the app is now."""

    panes: list[str]
    selected: str | None  # the selected pane's shown name
    blind: bool
    can_think: bool
    thinking: bool
    suggestions: dict[str, list[str]] = field(default_factory=dict)


class PaletteSource(Protocol):
    def palette_state(self) -> PaletteState: ...


FORMAT_NAMES = {"md": "Markdown", "json": "JSON", "csv": "CSV"}


def app_commands(state: PaletteState) -> list[Command]:
    """What the palette offers now: unload and thinking depend on what is loaded, and blind
    mode hides the commands that name adapters."""
    return [*_pane_commands(state), *_session_commands(state), *_suggestions(state)]


def _pane_commands(state: PaletteState) -> list[Command]:
    selected = state.selected or "the selected pane"
    return [
        Command("Load adapter program", "Add a .pte over a foundation open", "load_program"),
        Command(
            "Open foundation",
            "Another .ptd and programs over it, beside the others (another quantization)",
            "load_program(True)",
        ),
        *(
            Command(f"Unload {name}", f"Free {name}'s memory", f"unload({name!r})")
            for name in ([] if state.blind else state.panes)
        ),
        Command(
            f"Blind mode {'off' if state.blind else 'on'}",
            "Hide names, shuffle the panes per prompt, vote, then reveal (F3)",
            "toggle_blind",
        ),
        Command(
            "Diff answers", "Word diff of the selected pane's answer with another's (F4)", "diff"
        ),
        Command(
            "Regenerate selected",
            f"Answer the last prompt again in {selected} (Ctrl+R)",
            "regenerate(False)",
        ),
        Command(
            "Regenerate all", "Answer the last prompt again in every pane (F5)", "regenerate(True)"
        ),
        Command(
            f"Set temperature for {selected}",
            "This pane's own temperature, over the app's",
            "set_pane_setting('temperature')",
        ),
        Command(
            f"Set seed for {selected}",
            "A fixed seed makes a sampled reply repeat on regenerate",
            "set_pane_setting('seed')",
        ),
    ]


def _session_commands(state: PaletteState) -> list[Command]:
    commands = [
        Command(
            "Run prompt set…",
            "Every prompt of a JSONL file through all panes, then the scores",
            "run_prompt_set",
        ),
        *(
            Command(
                f"Export results as {FORMAT_NAMES[fmt]}",
                "Every answer with its vote, and the tally, next to the results file",
                f"export_results({fmt!r})",
            )
            for fmt in EXPORT_FORMATS
        ),
        Command("Clear conversations", "Forget every conversation", "clear"),
        Command("Save transcript", "Write all conversations as Markdown", "save_transcript"),
        Command("Toggle broadcast", "Send to all adapters or the selected one", "toggle_broadcast"),
        Command("Set temperature", "0 is greedy", "set_temperature"),
        Command("Set max new tokens", "Longest reply, in tokens", "set_max_tokens"),
        Command("Copy last reply", "The selected adapter's last reply", "copy_last_reply"),
    ]
    if state.can_think:
        commands.append(
            Command(
                f"Toggle thinking (now {'on' if state.thinking else 'off'})",
                "Let a model with a thinking switch (Qwen3) think before it answers",
                "toggle_thinking",
            )
        )
    return commands


def _suggestions(state: PaletteState) -> list[Command]:
    return [
        Command(
            f"Ask: {prompt}",
            f"A question the {name} adapter was trained for",
            f"suggest({prompt!r})",
        )
        for name, prompts in state.suggestions.items()
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
        return app_commands(cast(PaletteSource, self.app).palette_state())

    def _run(self, command: Command) -> Callable[[], Awaitable[bool]]:
        return lambda: self.app.run_action(command.action)  # the palette awaits it

    async def discover(self) -> Hits:
        for command in self._commands():
            shown = Content(printable(command.title))
            yield DiscoveryHit(shown, self._run(command), shown.plain, help_text(command))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            title = printable(command.title)
            score = matcher.match(title)
            if score > 0:
                shown = highlighted(matcher, title)
                yield Hit(score, shown, self._run(command), title, help_text(command))
