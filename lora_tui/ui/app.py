"""The lora-tui app: adapter panes side by side, a prompt, and a live memory panel.

The app composes and routes: engine events to the panes and the memory panel, keys and palette
commands to actions. What an action does lives beside it: prompts and rounds (``replies.py``),
blind mode, prompt sets, dialogs and settings, programs and foundations opened from the palette
(``opening.py``), the results writer (``lora_tui/judging/results.py``), the engine's supervisor
(``engine/supervisor.py``) and what replaces a dead engine (``recovery.py``), a build the panes
wait on (``pending_build.py``) and the buffer streamed text waits in (``streaming.py``)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from textual import on
from textual.app import App
from textual.reactive import var
from textual.widgets import Input

from lora_tui.demo.build_child import BuildClient
from lora_tui.engine import protocol as events
from lora_tui.engine.memory import MemorySample, sample_tree
from lora_tui.engine.protocol import EngineClient, EngineEvent, EngineFactory
from lora_tui.engine.supervisor import EngineSupervisor
from lora_tui.engine.types import GenerationSettings
from lora_tui.judging.results import ResultsWriter
from lora_tui.ui.blind import BlindMode
from lora_tui.ui.dialogs import SettingsDialogs
from lora_tui.ui.keys import APP_BINDINGS, MAIN_SCREEN_ACTIONS, UNBOUND_KEYS
from lora_tui.ui.messages import BuildEventArrived, EngineEventArrived, PiecesReady
from lora_tui.ui.notices import LiteralNotices
from lora_tui.ui.opening import open_programs
from lora_tui.ui.palette import LoraTuiCommands, PaletteState
from lora_tui.ui.pending_build import PendingBuild
from lora_tui.ui.prompt_set import run_prompt_set
from lora_tui.ui.recovery import recover
from lora_tui.ui.replies import Replies
from lora_tui.ui.screens.diff import DiffScreen
from lora_tui.ui.screens.help import HelpScreen
from lora_tui.ui.screens.main import MainScreen
from lora_tui.ui.streaming import PieceBuffer
from lora_tui.ui.transcript import save_transcript
from lora_tui.ui.widgets.adapter_pane import AdapterPane
from lora_tui.ui.widgets.vote_bar import VoteBar

MEMORY_INTERVAL_S = 1.0
QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class LoraTuiApp(LiteralNotices, App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "lora-tui"
    COMMANDS = App.COMMANDS | {LoraTuiCommands}
    # Below 80 columns the memory panel gives its width to the conversations (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-wide")]
    BINDINGS = APP_BINDINGS

    # `var`, not `reactive`: a reactive on the App repaints the whole screen when it changes,
    # which made every Tab cost a full-screen render.
    broadcast = var(True)
    selected = var(0)

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
        tool_memory: Callable[[], MemorySample] = lambda: sample_tree(os.getpid()),
    ) -> None:
        """``names``: a program's pane name when not its file's (``nobel · 8da4w g32``, with
        several foundations). ``build``: the programs are still being built; their panes
        show its progress and the engine starts once it hands them over. ``tool_memory``:
        the whole tool's memory (this process and every process under it)."""
        super().__init__()
        # Every answer is appended there (lora_tui/judging/results.py), off the UI thread.
        self.results = ResultsWriter(results_path, self._from_writer) if results_path else None
        self.blind = BlindMode(self, self.results)
        self.replies = Replies(self, self.blind, self.results)
        self.dialogs = SettingsDialogs(self)
        self.suggestions = suggestions or {}  # adapter name -> prompts to try, in the palette
        self.programs, self.names = programs, names or {}
        self.supervisor = EngineSupervisor(engine_factory, self._from_engine)
        self.settings = settings or GenerationSettings(temperature=0.0, max_new_tokens=256)
        self.transcript_dir, self.cursor_blink = transcript_dir or Path.cwd(), cursor_blink
        self.memory_interval_s, self.tool_memory = memory_interval_s, tool_memory
        self.panes: dict[str, AdapterPane] = {}
        self.main = MainScreen()
        self.pieces = PieceBuffer()
        self.build = (
            PendingBuild(build, self.panes.values, self.supervisor.start, self.notify)
            if build
            else None
        )

    @property
    def engine(self) -> EngineClient | None:
        return self.supervisor.engine

    @property
    def selected_pane(self) -> AdapterPane | None:
        panes = list(self.panes.values())
        return panes[self.selected] if 0 <= self.selected < len(panes) else None

    # --- layout ----------------------------------------------------------------------------

    def get_default_screen(self) -> MainScreen:
        return self.main

    @on(MainScreen.Ready)
    async def _start(self) -> None:
        self.main.prompt.cursor_blink = self.cursor_blink
        self.main.prompt.focus()
        if self.build is None:
            self.supervisor.start()
        else:
            self.build.start(lambda event: self.post_message(BuildEventArrived(event)))
            self.set_interval(1.0, self.build.tick)
        for program in self.programs:
            await self.add_program(program)
        self._show_target()
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
        if self.build is not None:
            self.build.stop()  # it resumes at the next start
        self.supervisor.close()
        if self.results is not None:
            self.results.close()

    @on(MainScreen.Resized)
    def _relayout(self) -> None:
        self.main.show_panes(list(self.panes.values()), self.selected)

    async def add_program(self, path: Path, name: str | None = None) -> None:
        first = name = name or self.names.get(path, path.stem)
        copy = 2
        while name in self.panes:
            name, copy = f"{first}#{copy}", copy + 1
        pane = AdapterPane(name, len(self.panes) + 1, path)
        if self.blind.on:
            pane.set_alias("?")  # named by a letter at the next prompt
        self.panes[name] = pane
        await self.main.query_one("#panes").mount(pane)
        self._relayout()
        if self.engine is not None:
            self.engine.load(path, name)
        elif self.build is not None and self.build.running:
            self.build.show(pane)  # loaded with the others once the build is done
        else:
            pane.failed("no engine is running (the build failed or it kept stopping)")

    @on(BuildEventArrived)
    def _build_event(self, message: BuildEventArrived) -> None:
        if self.build is not None:
            self.build.handle(message.event)
            self.replies.settle()  # a pane whose build failed misses the prompts it kept

    def reorder(self, names: list[str]) -> None:
        """Show the panes in this order (blind mode shuffles them for every prompt)."""
        self.panes = {name: self.panes[name] for name in [*names, *self.panes]}
        self._relayout()

    # --- engine events (posted from the engine's reader thread) -----------------------------

    def _from_engine(self, event: EngineEvent) -> None:
        if not isinstance(event, events.Piece):
            self.post_message(EngineEventArrived(event))
        elif self.pieces.add(event.adapter, event.text):
            self.post_message(PiecesReady())

    @on(PiecesReady)
    async def _pieces_ready(self) -> None:
        wait = self.pieces.wait_s()
        if wait <= 0:
            await self._flush_pieces()
        elif not self.pieces.timer_set:
            self.pieces.timer_set = True
            self.set_timer(wait, self._flush_pieces)

    async def _flush_pieces(self) -> None:
        self.pieces.timer_set = False
        with self.batch_update():  # every pane's new text in one frame: one layout, not one each
            for name, text in self.pieces.take().items():
                if (pane := self.panes.get(name)) is not None:
                    await pane.add_piece(text)

    @on(EngineEventArrived)
    async def _engine_event(self, message: EngineEventArrived) -> None:
        await self._flush_pieces()  # text that arrived before this event goes first
        event = message.event
        if isinstance(event, events.EngineReady):
            self.main.memory_panel.engine_ready(event)
            self.sub_title = "weight sharing on" if event.sharing.enabled else "weight sharing OFF"
        elif isinstance(event, events.EngineFailed):
            await recover(
                event.error, self.panes.values(), self.replies, self.supervisor, self.notify
            )
        elif (pane := self.panes.get(event.adapter)) is None:
            return  # unloaded while the event was on its way
        elif isinstance(event, events.Loaded):
            self.main.memory_panel.adapter_loaded(event.info)
            await self.replies.loaded(pane, event.info)  # then it answers what it kept
        elif isinstance(event, events.LoadFailed):
            self.replies.load_failed(pane, event.error)
        elif isinstance(event, events.ReplyDone):
            await self.replies.finish_reply(pane, event)

    def _from_writer(self, text: str, ok: bool) -> None:
        severity = "information" if ok else "error"
        self.call_from_thread(self.notify, text, title="results", severity=severity)

    # --- sending ---------------------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    async def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text and (targets := await self.replies.targets()):
            event.input.value = ""
            await self.replies.start_round(targets, text)

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The panes' keys work on the main screen only: over a dialog, its own keys (Tab in
        # the diff, for one) come first. F4 on the diff closes it (its own binding).
        return action not in MAIN_SCREEN_ACTIONS or self.screen is self.main

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen([*self.BINDINGS, *VoteBar.BINDINGS], UNBOUND_KEYS))

    def action_select(self, number: int) -> None:
        if 1 <= number <= len(self.panes):
            self.selected = number - 1

    def action_select_step(self, step: int) -> None:
        if self.panes:
            self.selected = (self.selected + step) % len(self.panes)

    def watch_selected(self) -> None:
        if self.main.is_mounted:
            self.main.mark_selected(list(self.panes.values()), self.selected)
            self._show_target()
            pane = self.selected_pane
            if pane is not None and self.main.maximized is not None:
                self.main.maximize(pane, container=False)

    def watch_broadcast(self) -> None:
        if self.main.is_mounted:
            self._show_target()

    def _show_target(self) -> None:
        pane = self.selected_pane
        self.main.show_target(self.broadcast, pane.adapter_name if pane else None)

    def action_toggle_broadcast(self) -> None:
        if self.blind.on:
            self.notify("in blind mode every adapter answers every prompt", severity="warning")
            return
        self.broadcast = not self.broadcast

    def action_maximize(self) -> None:
        if self.main.maximized is not None:
            self.main.minimize()
        elif self.selected_pane is not None:
            self.main.maximize(self.selected_pane, container=False)

    def action_cancel(self) -> None:
        self.replies.cancel()

    async def action_toggle_blind(self) -> None:
        await self.blind.toggle()

    @on(VoteBar.Voted)
    def _voted(self, message: VoteBar.Voted) -> None:
        self.blind.voted(self.replies.round, message.choice)

    def focus_prompt(self) -> None:
        self.main.prompt.focus()

    def action_diff(self) -> None:
        replies = {p: p.conversation.last_reply for p in self.panes.values()}
        answered = [p for p, reply in replies.items() if reply is not None]
        if len(answered) < 2:
            self.notify("the diff needs two panes with an answer", severity="warning")
            return
        left = answered.index(self.selected_pane) if self.selected_pane in answered else 0
        self.push_screen(DiffScreen([(p.shown_name, replies[p] or "") for p in answered], left))

    async def action_regenerate(self, every_pane: bool) -> None:
        """Answer the last prompt again, in the selected pane or in all of them."""
        panes = list(self.panes.values()) if every_pane else [self.selected_pane]
        await self.replies.regenerate([p for p in panes if p is not None])

    async def action_clear(self) -> None:
        if self.engine is not None:
            self.engine.clear(None)
        self.replies.drop_kept("cleared")
        for pane in self.panes.values():
            await pane.clear()

    def action_save_transcript(self) -> None:
        panes = [(p.adapter_name, p.conversation.turns) for p in self.panes.values()]
        try:
            self.notify(save_transcript(panes, self.transcript_dir), title="transcript")
        except OSError as err:
            self.notify(str(err), severity="error", timeout=15)

    def action_copy_last_reply(self) -> None:
        pane = self.selected_pane
        reply = pane.conversation.last_reply if pane else None
        if pane is None or reply is None:
            self.notify("the selected adapter has not replied yet", severity="warning")
            return
        self.copy_to_clipboard(reply)
        self.notify(f"copied {pane.adapter_name}'s last reply ({len(reply)} characters)")

    def action_load_program(self, foundation: bool = False) -> None:
        opened = lambda paths: self.run_worker(open_programs(self, paths))  # noqa: E731
        self.dialogs.program(opened, foundation)

    async def action_unload(self, name: str) -> None:
        pane = self.panes.pop(name, None)
        if pane is None:
            return
        if self.engine is not None:
            self.engine.unload(name)
        await pane.remove()
        self.main.memory_panel.adapter_removed(name)
        self.replies.dropped(name)
        self.selected = min(self.selected, max(len(self.panes) - 1, 0))
        self._relayout()
        self._show_target()

    def action_set_temperature(self) -> None:
        self.dialogs.temperature()

    def action_set_max_tokens(self) -> None:
        self.dialogs.max_tokens()

    def action_set_pane_setting(self, setting: str) -> None:
        self.dialogs.pane_setting(setting)

    def action_toggle_thinking(self) -> None:
        self.dialogs.toggle_thinking()

    def action_export_results(self, fmt: str) -> None:
        if self.results is None:
            self.notify("no results file in this session (--results PATH)", severity="warning")
            return
        self.results.export(fmt)

    def action_run_prompt_set(self) -> None:
        if self.blind.on:
            self.notify("leave blind mode (F3) to run a prompt set", severity="warning")
            return
        self.dialogs.prompt_set(
            lambda path: self.run_worker(
                run_prompt_set(self, self.replies, path), group="prompt-set", exclusive=True
            )
        )

    # --- command palette (ui/commands.py) ------------------------------------------------------

    def palette_state(self) -> PaletteState:
        pane = self.selected_pane
        return PaletteState(
            panes=list(self.panes),
            selected=pane.shown_name if pane else None,
            blind=self.blind.on,
            can_think=self.dialogs.can_think(),
            thinking=self.settings.thinking,
            suggestions=self.suggestions,
        )

    def action_suggest(self, prompt: str) -> None:
        """Put a suggested prompt in the input, ready to edit or send."""
        self.main.put_prompt(prompt)
