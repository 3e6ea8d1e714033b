"""What the app lends its main screen: the engine (through its supervisor, which replaces a
dead one), a build the panes may wait on, the settings every reply starts from, the results
file, the demo's suggested prompts, the base the user named (``--base``) and a training run
watched. The app starts and stops what runs; the screen uses it."""

from __future__ import annotations

from dataclasses import dataclass, field

from lora_tui.engine.protocol import EngineClient
from lora_tui.engine.supervisor import EngineSupervisor
from lora_tui.engine.types import GenerationSettings
from lora_tui.judging.results import ResultsWriter
from lora_tui.ui.pending_build import PendingBuild
from lora_tui.watch.watcher import RunWatcher


@dataclass
class Session:
    supervisor: EngineSupervisor
    settings: GenerationSettings  # the app's; a pane's own override them
    results: ResultsWriter | None = None  # every answer and vote is a line there
    build: PendingBuild | None = None  # the programs are still being built
    suggestions: dict[str, list[str]] = field(default_factory=dict)  # adapter -> prompts
    base: str | None = None  # --base: the program the others are scored against, once loaded
    watcher: RunWatcher | None = None  # --watch: its new checkpoints open as panes

    @property
    def engine(self) -> EngineClient | None:
        """None once it kept stopping and was not started again."""
        return self.supervisor.engine
