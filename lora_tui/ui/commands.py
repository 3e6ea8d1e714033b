"""The command palette's lora-tui commands, as a Textual ``Provider``: loading and
unloading programs, settings, transcripts and the demo's suggested questions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from lora_tui.ui.app import LoraTuiApp


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    run: Callable[[], object]


def app_commands(app: LoraTuiApp) -> list[Command]:
    """What the palette offers now: unload and thinking depend on what is loaded."""
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
            for name in list(app.panes)
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
