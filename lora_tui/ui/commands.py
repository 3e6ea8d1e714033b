"""The command palette's lora-tui commands, as a Textual ``Provider``: loading and
unloading programs, settings, blind mode and judging, results, transcripts and the demo's
suggested questions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from lora_tui.results import EXPORT_FORMATS

if TYPE_CHECKING:
    from lora_tui.ui.app import LoraTuiApp


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    run: Callable[[], object]


FORMAT_NAMES = {"md": "Markdown", "json": "JSON", "csv": "CSV"}


def app_commands(app: LoraTuiApp) -> list[Command]:
    """What the palette offers now: unload and thinking depend on what is loaded, and blind
    mode hides the commands that name adapters."""
    selected = app.selected_pane.shown_name if app.selected_pane else "the selected pane"
    blind = "off" if app.blind.on else "on"
    commands = [
        Command(
            "Load adapter program", "Add a .pte over the same foundation", app.action_load_program
        ),
        *(
            Command(
                f"Unload {name}",
                f"Free {name}'s memory",
                lambda name=name: app.run_worker(app.unload(name)),
            )
            for name in ([] if app.blind.on else list(app.panes))
        ),
        Command(
            f"Blind mode {blind}",
            "Hide names, shuffle the panes per prompt, vote, then reveal (F3)",
            lambda: app.run_worker(app.action_toggle_blind()),
        ),
        Command(
            "Diff answers",
            "Word diff of the selected pane's answer with another's (F4)",
            app.action_diff,
        ),
        Command(
            "Regenerate selected",
            f"Answer the last prompt again in {selected} (Ctrl+R)",
            lambda: app.run_worker(app.action_regenerate(False)),
        ),
        Command(
            "Regenerate all",
            "Answer the last prompt again in every pane (F5)",
            lambda: app.run_worker(app.action_regenerate(True)),
        ),
        Command(
            f"Set temperature for {selected}",
            "This pane's own temperature, over the app's",
            lambda: app.action_set_pane_setting("temperature"),
        ),
        Command(
            f"Set seed for {selected}",
            "A fixed seed makes a sampled reply repeat on regenerate",
            lambda: app.action_set_pane_setting("seed"),
        ),
        Command(
            "Run prompt set…",
            "Every prompt of a JSONL file through all panes, then the scores",
            app.action_run_prompt_set,
        ),
        *(
            Command(
                f"Export results as {FORMAT_NAMES[fmt]}",
                "Every answer with its vote, and the tally, next to the results file",
                lambda fmt=fmt: app.action_export_results(fmt),
            )
            for fmt in EXPORT_FORMATS
        ),
        Command("Clear conversations", "Forget every conversation", app.action_clear),
        Command(
            "Save transcript", "Write all conversations as Markdown", app.action_save_transcript
        ),
        Command(
            "Toggle broadcast",
            "Send to all adapters or the selected one",
            app.action_toggle_broadcast,
        ),
        Command("Set temperature", "0 is greedy", app.action_set_temperature),
        Command("Set max new tokens", "Longest reply, in tokens", app.action_set_max_tokens),
        Command("Copy last reply", "The selected adapter's last reply", app.action_copy_last_reply),
    ]
    if app.can_think():
        state = "on" if app.settings.thinking else "off"
        commands.append(
            Command(
                f"Toggle thinking (now {state})",
                "Let a model with a thinking switch (Qwen3) think before it answers",
                app.action_toggle_thinking,
            )
        )
    for name, prompts in app.suggestions.items():
        commands += [
            Command(
                f"Ask: {prompt}",
                f"A question the {name} adapter was trained for",
                lambda prompt=prompt: app.suggest(prompt),
            )
            for prompt in prompts
        ]
    return commands


class LoraTuiCommands(Provider):
    async def discover(self) -> Hits:
        for command in app_commands(self.app):  # type: ignore[arg-type]
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in app_commands(self.app):  # type: ignore[arg-type]
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run, help=command.help)
