"""The lora-tui app: adapter panes side by side, a prompt, and a live memory panel.

The app composes and routes. It starts and stops what runs beside it (the engine's
supervisor, ``engine/supervisor.py``; a build the panes wait on, ``pending_build.py``; the
results writer, ``lora_tui/judging/results.py``), lends them to its main screen as a
``Session`` and routes their events there. The main screen (``screens/main.py``) owns the
panes and acts on its keys and the palette's commands (``palette.py``); the app keeps only
the keys that work over any screen: help, cancel, save and quit."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from textual import on
from textual.app import App

from lora_tui.demo.build_child import BuildClient
from lora_tui.engine import protocol as events
from lora_tui.engine.memory import ToolLayout, ToolMemory, measure_tool
from lora_tui.engine.protocol import EngineClient, EngineFactory
from lora_tui.engine.supervisor import EarlyEvents, EngineSupervisor
from lora_tui.engine.types import GenerationSettings
from lora_tui.judging.results import ResultsWriter
from lora_tui.ui.keys import APP_BINDINGS, HELP_BINDINGS, UNBOUND_KEYS
from lora_tui.ui.messages import BuildEventArrived, EngineEventArrived
from lora_tui.ui.notices import LiteralNotices
from lora_tui.ui.palette import LoraTuiCommands
from lora_tui.ui.pending_build import PendingBuild
from lora_tui.ui.screens.help import HelpScreen
from lora_tui.ui.screens.main import MainScreen
from lora_tui.ui.session import Session
from lora_tui.ui.transcript import save_transcript
from lora_tui.ui.widgets.vote_bar import VoteBar
from lora_tui.watch.watcher import RunWatcher

MEMORY_INTERVAL_S = 1.0
QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class LoraTuiApp(LiteralNotices, App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "lora-tui"
    COMMANDS = App.COMMANDS | {LoraTuiCommands}
    # Below 80 columns the memory panel gives its width to the conversations (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-wide")]
    BINDINGS = APP_BINDINGS

    def __init__(
        self,
        programs: list[Path],
        engine_factory: EngineFactory,
        names: Mapping[Path, str] | None = None,
        settings: GenerationSettings | None = None,
        transcript_dir: Path | None = None,
        cursor_blink: bool = True,
        memory_interval_s: float = MEMORY_INTERVAL_S,
        suggestions: dict[str, list[str]] | None = None,
        results_path: Path | None = None,
        build: BuildClient | None = None,
        tool_memory: Callable[[ToolLayout], ToolMemory | None] = (
            lambda layout: measure_tool(os.getpid(), layout)
        ),
        base: str | None = None,
        watcher: RunWatcher | None = None,
    ) -> None:
        """``names``: a program's pane name when not its file's (``nobel · 8da4w g32``, with
        several foundations). ``build``: the programs are still being built; their panes
        show its progress and the engine starts once it hands them over. ``tool_memory``:
        the whole tool's memory (this process and every process under it), by what holds
        it, given where the engine said things are. ``base``: the
        program the others' replies are scored against (``--base``: its name, file or path).
        ``watcher``: a training run whose new checkpoints open as panes (``--watch``)."""
        super().__init__()
        # The engine's events go to the main screen's panes, from the engine's reader thread;
        # those that come before the screen is up wait for it.
        self._engine_events = EarlyEvents(lambda event: self.main.from_engine(event))
        supervisor = EngineSupervisor(engine_factory, self._engine_events)
        self.session = Session(
            supervisor,
            settings or GenerationSettings(temperature=0.0, max_new_tokens=256),
            # Every answer is appended there (lora_tui/judging/results.py), off the UI thread.
            ResultsWriter(results_path, self._from_writer) if results_path else None,
            suggestions=suggestions or {},  # adapter name -> prompts to try, in the palette
            base=base,
            watcher=watcher,
        )
        self.main = MainScreen(self.session)
        if build is not None:
            panes = lambda: self.main.panes.values()  # noqa: E731
            self.session.build = PendingBuild(build, panes, supervisor.start, self.notify)
        self.programs, self.names = programs, names or {}
        self.transcript_dir, self.cursor_blink = transcript_dir or Path.cwd(), cursor_blink
        self.memory_interval_s, self.tool_memory = memory_interval_s, tool_memory
        if build is None:
            # Now, not once the screen is up: its process imports the runtime meanwhile.
            supervisor.start()

    @property
    def engine(self) -> EngineClient | None:
        return self.session.engine

    def get_default_screen(self) -> MainScreen:
        return self.main

    @on(MainScreen.Ready)
    async def _start(self) -> None:
        self.main.prompt.cursor_blink = self.cursor_blink
        self.main.prompt.focus()
        self._engine_events.release()
        if (build := self.session.build) is not None:
            build.start(lambda event: self.post_message(BuildEventArrived(event)))
            self.set_interval(1.0, build.tick)
        for program in self.programs:
            await self.main.add_program(program, self.names.get(program))
        self.main.watch_run()  # once the engine is started: its programs open as panes
        engine_memory = lambda: self.engine.memory() if self.engine else None  # noqa: E731
        self.main.memory_panel.sample(engine_memory, self.tool_memory, self.memory_interval_s)

    def on_mount(self) -> None:
        # A terminal closing (SIGHUP) or a plain kill (SIGTERM) quits like Ctrl+Q: the
        # terminal is restored and the engine process goes with the app.
        loop = asyncio.get_running_loop()
        for signum in QUIT_SIGNALS:
            loop.add_signal_handler(signum, self.exit)

    async def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in QUIT_SIGNALS:
            loop.remove_signal_handler(signum)
        if self.session.build is not None:
            self.session.build.stop()  # it resumes at the next start
        if self.session.watcher is not None:
            self.session.watcher.stop()  # and the export under way: it publishes whole
        self.session.supervisor.close()
        if self.session.results is not None:
            self.session.results.close()

    @on(BuildEventArrived)
    def _build_event(self, message: BuildEventArrived) -> None:
        if self.session.build is not None:
            self.session.build.handle(message.event)

    @on(EngineEventArrived)
    def _engine_ready(self, message: EngineEventArrived) -> None:
        # The main screen showed it; what concerns the app bubbles up to here.
        if isinstance(ready := message.event, events.EngineReady):
            self.sub_title = "weight sharing on" if ready.sharing.enabled else "weight sharing OFF"

    def _from_writer(self, text: str, ok: bool) -> None:
        severity = "information" if ok else "error"
        self.call_from_thread(self.notify, text, title="results", severity=severity)

    # --- the keys that work over any screen ---------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen([*HELP_BINDINGS, *VoteBar.BINDINGS], UNBOUND_KEYS))

    def action_cancel(self) -> None:
        """Esc: drop the prompts kept and not sent, and cancel the replies in progress (a
        prompt set running stops at this prompt)."""
        replies = self.main.replies
        replies.drop_kept("cancelled (Esc)")
        if self.engine is not None and replies.answering():
            self.engine.cancel(None)

    def action_save_transcript(self) -> None:
        panes = [(p.adapter_name, p.conversation.turns) for p in self.main.panes.values()]
        try:
            self.notify(save_transcript(panes, self.transcript_dir), title="transcript")
        except OSError as err:
            self.notify(str(err), severity="error", timeout=15)
