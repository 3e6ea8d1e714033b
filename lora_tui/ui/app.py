"""The lora-tui app: adapter panes side by side, a prompt, and a live memory panel."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.widgets import Input

from lora_tui.common.files import write_text_atomic
from lora_tui.engine.protocol import (
    EngineClient,
    EngineEvent,
    EngineFactory,
    EngineFailed,
    EngineReady,
    Loaded,
    LoadFailed,
    Notice,
    Piece,
    ReplyDone,
)
from lora_tui.engine.types import GenerationSettings
from lora_tui.evaluate import EvalResult, PromptCase
from lora_tui.format import ArtifactError
from lora_tui.results import (
    ResultsFile,
    default_results_path,
    export_results,
    read_results,
    reply_record,
    vote_record,
)
from lora_tui.ui.blind import BlindMode
from lora_tui.ui.commands import LoraTuiCommands
from lora_tui.ui.messages import EngineEventArrived, MemorySampled, PiecesReady
from lora_tui.ui.prompt_set import run_prompt_set
from lora_tui.ui.rounds import Round
from lora_tui.ui.screens.ask import AskScreen
from lora_tui.ui.screens.diff import DiffScreen
from lora_tui.ui.screens.help import HelpScreen
from lora_tui.ui.screens.main import MainScreen
from lora_tui.ui.transcript import transcript_markdown
from lora_tui.ui.widgets.adapter_pane import AdapterPane
from lora_tui.ui.widgets.memory_panel import MemoryPanel
from lora_tui.ui.widgets.prompt_bar import PromptBar
from lora_tui.ui.widgets.vote_bar import VoteBar

PANE_MIN_WIDTH = 36
MEMORY_INTERVAL_S = 1.0
STREAM_INTERVAL_S = 0.1
# An engine that dies is started again, but not without end: at most this many times a minute.
MAX_RESTARTS_PER_MINUTE = 3
QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

# Keys that are not the app's own bindings, for the help screen: the prompt's Enter and the
# palette's key, which Textual binds.
UNBOUND_KEYS = [
    ("Enter", "send the prompt (to every adapter, or the selected one)"),
    ("Ctrl+P", "command palette: load, unload, settings (thinking too), copy, save"),
]
MAIN_SCREEN_ACTIONS = {
    "select",
    "select_step",
    "maximize",
    "toggle_broadcast",
    "toggle_blind",
    "diff",
    "regenerate",
    "clear",
}
SELECT_ADAPTER = Binding.Group("select adapter N (digits when the prompt is not focused)")


class LoraTuiApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "lora-tui"
    COMMANDS = App.COMMANDS | {LoraTuiCommands}
    # Below 80 columns the memory panel gives its width to the conversations (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-wide")]
    # The tooltip is the help screen's text (screens/help.py builds it from these bindings).
    BINDINGS = [
        Binding("f1", "help", "Help", priority=True, tooltip="this help"),
        Binding("question_mark", "help", "Help", show=False, tooltip="this help"),
        Binding(
            "tab",
            "select_step(1)",
            "Next",
            priority=True,
            tooltip="select the next / previous adapter",
        ),
        Binding(
            "shift+tab",
            "select_step(-1)",
            "Previous",
            show=False,
            priority=True,
            tooltip="select the next / previous adapter",
        ),
        Binding(
            "f2",
            "maximize",
            "Maximize",
            priority=True,
            tooltip="maximize or restore the selected pane",
        ),
        Binding(
            "ctrl+b",
            "toggle_broadcast",
            "All/one",
            priority=True,
            tooltip="toggle: send to all adapters / to the selected one",
        ),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            tooltip="cancel the replies in progress (what arrived is kept), or a prompt set",
        ),
        Binding(
            "f3",
            "toggle_blind",
            "Blind",
            priority=True,
            tooltip="blind mode: hide names, shuffle panes per prompt, vote, reveal",
        ),
        Binding(
            "f4",
            "diff",
            "Diff",
            priority=True,
            tooltip="word diff of the selected pane's last answer with another pane's",
        ),
        Binding(
            "ctrl+r",
            "regenerate(False)",
            "Again",
            show=False,
            priority=True,
            tooltip="answer the last prompt again in the selected pane",
        ),
        Binding(
            "f5",
            "regenerate(True)",
            "Again (all)",
            show=False,
            priority=True,
            tooltip="answer the last prompt again in every pane",
        ),
        Binding("ctrl+l", "clear", "Clear", priority=True, tooltip="clear every conversation"),
        Binding(
            "ctrl+s",
            "save_transcript",
            "Save",
            priority=True,
            tooltip="save the transcript as Markdown",
        ),
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="quit"),
        *[
            Binding(f"alt+{n}", f"select({n})", show=False, priority=True, group=SELECT_ADAPTER)
            for n in range(1, 10)
        ],
        *[Binding(str(n), f"select({n})", show=False, group=SELECT_ADAPTER) for n in range(1, 10)],
    ]

    # `var`, not `reactive`: a reactive on the App repaints the whole screen when it changes,
    # which made every Tab cost a full-screen render.
    broadcast = var(True)
    selected = var(0)

    def __init__(
        self,
        programs: list[Path],
        engine_factory: EngineFactory,
        settings: GenerationSettings | None = None,
        transcript_dir: Path | None = None,
        cursor_blink: bool = True,
        memory_interval_s: float = MEMORY_INTERVAL_S,
        suggestions: dict[str, list[str]] | None = None,
        results_path: Path | None = None,
    ) -> None:
        super().__init__()
        # Every answer is appended there (lora_tui/results.py), off the UI thread: the first
        # line of a program hashes its .pte, and each line is synced to disk.
        self.results = ResultsFile(results_path) if results_path else None
        self._results_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results")
        # adapter -> the settings of its reply in progress or last (seed included)
        self._sent_with: dict[str, GenerationSettings] = {}
        self._seeds = random.Random()  # a sampled reply without a fixed seed gets a fresh one
        self.round: Round | None = None  # the last prompt, until every pane has answered it
        self.blind = BlindMode(self)
        self.suggestions = suggestions or {}  # adapter name -> prompts to try, in the palette
        self.programs = programs
        self.engine_factory = engine_factory
        self.settings = settings or GenerationSettings(temperature=0.0, max_new_tokens=256)
        self.transcript_dir = transcript_dir or Path.cwd()
        self.cursor_blink = cursor_blink
        self.memory_interval_s = memory_interval_s
        self.engine: EngineClient | None = None
        self.panes: dict[str, AdapterPane] = {}
        self.main = MainScreen()
        self._pending: dict[str, list[str]] = {}
        self._pending_lock = threading.Lock()
        self._last_flush = 0.0
        self._flush_timer_set = False
        self._restarts: list[float] = []  # when the engine was started again

    # --- layout ----------------------------------------------------------------------------

    def get_default_screen(self) -> MainScreen:
        return self.main

    @property
    def memory_panel(self) -> MemoryPanel:
        return self.main.query_one(MemoryPanel)

    @on(MainScreen.Ready)
    async def _start(self) -> None:
        prompt = self.main.query_one("#prompt", Input)
        prompt.cursor_blink = self.cursor_blink
        prompt.focus()
        self.engine = self.engine_factory(self._from_engine)
        for program in self.programs:
            await self._add_program(program)
        self._show_target()
        self._sample_memory()
        self.set_interval(self.memory_interval_s, self._sample_memory)

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
        if self.engine is not None:
            self.engine.close()
        self._results_writer.shutdown(wait=True)
        if self.results is not None:
            self.results.close()

    @on(MainScreen.Resized)
    def _resized(self) -> None:
        if self.panes:
            self._relayout()

    def _relayout(self) -> None:
        """Grid columns and pane numbers, after panes come or go or the terminal resizes."""
        grid = self.main.query_one("#panes")
        width = grid.size.width or self.size.width
        columns = max(1, min(len(self.panes), width // PANE_MIN_WIDTH)) if self.panes else 1
        if grid.styles.grid_size_columns != columns:
            grid.styles.grid_size_columns = columns
        for index, pane in enumerate(self.panes.values(), start=1):
            pane.set_index(index)
        self._mark_selected()

    def _mark_selected(self) -> None:
        for index, pane in enumerate(self.panes.values()):
            pane.selected = index == self.selected

    def _unique_name(self, path: Path) -> str:
        name, copy = path.stem, 2
        while name in self.panes:
            name, copy = f"{path.stem}#{copy}", copy + 1
        return name

    async def _add_program(self, path: Path) -> None:
        name = self._unique_name(path)
        pane = AdapterPane(name, len(self.panes) + 1, path)
        if self.blind.on:
            pane.set_alias("?")  # named by a letter at the next prompt
        self.panes[name] = pane
        await self.main.query_one("#panes").mount(pane)
        self._relayout()
        assert self.engine is not None
        self.engine.load(path, name)

    # --- engine events (posted from the engine's reader thread) -----------------------------

    def _from_engine(self, event: EngineEvent) -> None:
        # Tokens can arrive far faster than a screen can show them: buffer them and post
        # one message per batch, so a key press never waits behind a queue of tokens.
        if isinstance(event, Piece):
            with self._pending_lock:
                first = not self._pending
                self._pending.setdefault(event.adapter, []).append(event.text)
            if first:
                self.post_message(PiecesReady())
        else:
            self.post_message(EngineEventArrived(event))

    @on(PiecesReady)
    async def _pieces_ready(self) -> None:
        # The first text after a pause shows at once; after that at most every
        # STREAM_INTERVAL_S, so a long reply redraws a few times a second, not per token.
        wait = self._last_flush + STREAM_INTERVAL_S - time.monotonic()
        if wait <= 0:
            await self._flush_pieces()
        elif not self._flush_timer_set:
            self._flush_timer_set = True
            self.set_timer(wait, self._timed_flush)

    async def _timed_flush(self) -> None:
        self._flush_timer_set = False
        await self._flush_pieces()

    async def _flush_pieces(self) -> None:
        self._last_flush = time.monotonic()
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        with self.batch_update():  # every pane's new text in one frame: one layout, not one each
            for name, texts in pending.items():
                pane = self.panes.get(name)
                if pane is not None:
                    await pane.add_piece("".join(texts))

    @on(EngineEventArrived)
    async def _engine_event(self, message: EngineEventArrived) -> None:
        await self._flush_pieces()  # text that arrived before this event goes first
        event = message.event
        memory = self.memory_panel
        if isinstance(event, EngineReady):
            memory.engine_ready(event.sharing, event.baseline_rss_mib, event.foundation_mib)
            self.sub_title = "weight sharing on" if event.sharing.enabled else "weight sharing OFF"
            return
        if isinstance(event, EngineFailed):
            await self._engine_failed(event.error)
            return
        pane = self.panes.get(event.adapter)
        if pane is None:
            return  # unloaded while the event was on its way
        if isinstance(event, Loaded):
            pane.loaded(event.info)
            memory.adapter_loaded(event.info)
        elif isinstance(event, LoadFailed):
            pane.failed(event.error)
        elif isinstance(event, ReplyDone):
            await pane.finish_reply(event)
            self._save_result(pane, event)
            self._reply_done(event)
        elif isinstance(event, Notice):
            pane.notice(event.text)

    async def _engine_failed(self, error: str) -> None:
        """The engine process is gone. Start a new one and load the adapters that were
        healthy into it, each with its conversation, so its next prompt prefills the kept
        turns; a pane never waits on a dead engine."""
        for pane in list(self.panes.values()):
            done = await pane.engine_lost(error)
            if done is not None:
                self._reply_done(done)
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 60] + [now]
        if self.engine is not None:
            self.engine.close()
        if len(self._restarts) > MAX_RESTARTS_PER_MINUTE:
            self.engine = None
            self.notify(
                f"{error}; it keeps stopping, so it is not started again (see --log)",
                title="engine stopped",
                severity="error",
                timeout=60,
            )
            return
        self.notify(
            f"{error}; started a new one", title="engine stopped", severity="error", timeout=30
        )
        self.engine = self.engine_factory(self._from_engine)
        for pane in self.panes.values():
            if pane.state != "error" and pane.path is not None:
                pane.state = "loading"
                self.engine.load(pane.path, pane.adapter_name, pane.history())

    @work(thread=True, exclusive=True, group="memory")
    def _sample_memory(self) -> None:
        sample = self.engine.memory() if self.engine else None
        if sample is not None:
            self.post_message(MemorySampled(sample))

    @on(MemorySampled)
    def _memory_sampled(self, message: MemorySampled) -> None:
        self.memory_panel.record(message.sample)

    # --- sending ---------------------------------------------------------------------------

    @property
    def selected_pane(self) -> AdapterPane | None:
        panes = list(self.panes.values())
        return panes[self.selected] if 0 <= self.selected < len(panes) else None

    @on(Input.Submitted, "#prompt")
    async def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.engine is None:
            self.notify(
                "no engine is running (it kept stopping); restart lora-tui", severity="error"
            )
            return
        candidates = list(self.panes.values()) if self.broadcast else [self.selected_pane]
        targets = [p for p in candidates if p is not None and p.state in ("ready", "cancelled")]
        if not targets:
            states = {p.state for p in candidates if p is not None}
            if "generating" in states:
                why = "still answering — Esc cancels"
            elif "loading" in states:
                why = "the adapters are still loading; your prompt is kept, send it once one is"
            else:
                why = "no adapter is ready"
            self.notify(why, severity="warning")
            return
        if self.blind.on:
            # Every adapter that works answers every blind prompt (one that failed to load
            # sits it out).
            if len(targets) < sum(p is not None and p.state != "error" for p in candidates):
                self.notify("blind mode waits for every adapter to be ready", severity="warning")
                return
            targets = await self.blind.shuffle(targets)
        event.input.value = ""
        await self.start_round(targets, text)

    async def start_round(
        self, panes: list[AdapterPane], text: str, case: PromptCase | None = None
    ) -> Round:
        """Send one prompt to these panes, each with its own settings."""
        assert self.engine is not None
        names = [p.adapter_name for p in panes]
        self.round = Round(text, names, blind=self.blind.on, case=case)
        for pane in panes:
            await pane.start_reply(text)
        for settings, group in self._settings_groups(panes).items():
            self.engine.send(group, text, settings)
        return self.round

    def _settings_groups(self, panes: list[AdapterPane]) -> dict[GenerationSettings, list[str]]:
        """Panes by the settings they answer with: the app's, with each pane's own over them;
        a sampled reply without a fixed seed gets a new one, which the results file keeps."""
        groups: dict[GenerationSettings, list[str]] = {}
        for pane in panes:
            settings = replace(self.settings, **pane.overrides)  # type: ignore[arg-type]
            if settings.temperature > 0 and "seed" not in pane.overrides:
                settings = replace(settings, seed=self._seeds.randrange(2**31))
            self._sent_with[pane.adapter_name] = settings
            groups.setdefault(settings, []).append(pane.adapter_name)
        return groups

    def sent_settings(self, adapter: str) -> GenerationSettings:
        return self._sent_with.get(adapter, self.settings)

    def _reply_done(self, done: ReplyDone) -> None:
        round = self.round
        if round is not None and round.reply_done(done):
            total = round.together_tok_s()
            for name in round.together:
                if total is not None and name in self.panes:
                    self.panes[name].show_together(total)
            self.blind.round_finished(round)

    def _save_result(self, pane: AdapterPane, done: ReplyDone) -> None:
        prompts = [t.text for t in pane.turns if t.role == "user"]
        if self.results is None or not prompts:
            return
        settings = self.sent_settings(pane.adapter_name)
        round = self.round if self.round and pane.adapter_name in self.round.adapters else None
        if round is not None and round.case is not None:
            right = round.case.is_right(done.text) if done.error is None else False
            record = EvalResult(round.case, pane.adapter_name, done, right, settings).record()
        else:
            record = reply_record(prompts[-1], pane.adapter_name, done, settings)
        record["round"] = round.id if round else None
        self._results_writer.submit(self._append_result, record, pane.path)

    def save_vote(self, round: Round, verdict: str) -> None:
        if self.results is not None:
            record = vote_record(round.id, round.prompt, round.adapters, verdict)
            self._results_writer.submit(self._append_result, record, None)

    def _append_result(self, record: dict, program: Path | None) -> None:
        try:
            self.results.append(record, program)  # type: ignore[union-attr]
        except OSError as err:
            self.call_from_thread(
                self.notify, f"results not saved: {err}", severity="error", timeout=8
            )

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The panes' keys work on the main screen only: over a dialog, its own keys (Tab in
        # the diff, for one) come first. F4 on the diff closes it (its own binding).
        if action in MAIN_SCREEN_ACTIONS and self.screen is not self.main:
            return False
        return True

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
        if self.engine is not None:  # started: the main screen exists
            self._mark_selected()
            self._show_target()
            pane = self.selected_pane
            if pane is not None and self.main.maximized is not None:
                self.main.maximize(pane, container=False)

    def watch_broadcast(self) -> None:
        if self.engine is not None:
            self._show_target()

    def _show_target(self) -> None:
        pane = self.selected_pane
        self.main.query_one(PromptBar).show_target(
            self.broadcast, pane.adapter_name if pane else None
        )

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
        if self.engine is not None and any(p.state == "generating" for p in self.panes.values()):
            self.engine.cancel(None)  # a prompt set running stops at this prompt

    async def action_toggle_blind(self) -> None:
        await self.blind.toggle()

    @on(VoteBar.Voted)
    def _voted(self, message: VoteBar.Voted) -> None:
        self.blind.voted(self.round, message.choice)

    def focus_prompt(self) -> None:
        self.main.query_one("#prompt", Input).focus()

    def reorder(self, names: list[str]) -> None:
        """Show the panes in this order (blind mode shuffles them for every prompt)."""
        self.panes = {name: self.panes[name] for name in [*names, *self.panes]}
        grid = self.main.query_one("#panes")
        for index, pane in enumerate(self.panes.values()):
            if grid.children[index] is not pane:
                grid.move_child(pane, before=index)
        self._relayout()

    def action_diff(self) -> None:
        answered = [p for p in self.panes.values() if p.last_reply is not None]
        if len(answered) < 2:
            self.notify("the diff needs two panes with an answer", severity="warning")
            return
        selected = self.selected_pane
        left = answered.index(selected) if selected in answered else 0
        answers = [(p.shown_name, p.last_reply or "") for p in answered]
        self.push_screen(DiffScreen(answers, left))

    async def action_regenerate(self, every_pane: bool) -> None:
        """Answer the last prompt again, in the selected pane or in all of them."""
        if self.engine is None:
            return
        candidates = list(self.panes.values()) if every_pane else [self.selected_pane]
        panes = [p for p in candidates if p is not None and p.state in ("ready", "cancelled")]
        prompts = {p.adapter_name: await p.retract_last_exchange() for p in panes}
        panes = [p for p in panes if prompts[p.adapter_name] is not None]
        if not panes:
            self.notify("nothing to answer again (or still answering)", severity="warning")
            return
        self.blind.vote_bar.close()
        for prompt in dict.fromkeys(prompts[p.adapter_name] for p in panes):
            same = [p for p in panes if prompts[p.adapter_name] == prompt]
            names = [p.adapter_name for p in same]
            round = self.round
            if round is None or round.voted or round.prompt != prompt:
                round = self.round = Round(prompt or "", names)
            round.again(names)
            for pane in same:
                await pane.start_reply(prompt or "")
            for settings, group in self._settings_groups(same).items():
                self.engine.regenerate(group, settings)

    async def action_clear(self) -> None:
        if self.engine is not None:
            self.engine.clear(None)
        for pane in self.panes.values():
            await pane.clear()

    def action_save_transcript(self) -> None:
        when = datetime.now()
        path = self.transcript_dir / f"lora-tui-transcript-{when:%Y%m%d-%H%M%S}.md"
        text = transcript_markdown([(p.adapter_name, p.turns) for p in self.panes.values()], when)
        try:
            write_text_atomic(path, text)
        except OSError as err:
            reason = err.strerror or str(err)
            self.notify(f"could not save {path}: {reason}", severity="error", timeout=15)
            return
        self.notify(f"saved {path}", title="transcript")

    def action_copy_last_reply(self) -> None:
        pane = self.selected_pane
        reply = pane.last_reply if pane else None
        if reply is None:
            self.notify("the selected adapter has not replied yet", severity="warning")
            return
        self.copy_to_clipboard(reply)
        self.notify(f"copied {pane.adapter_name}'s last reply ({len(reply)} characters)")

    def action_load_program(self) -> None:
        def chosen(answer: str | None) -> None:
            if answer:
                self.run_worker(self._add_program(Path(answer).expanduser()))

        self.push_screen(
            AskScreen(
                "Load an adapter program (.pte) over the same foundation:",
                placeholder="path/to/adapter.pte",
            ),
            chosen,
        )

    async def unload(self, name: str) -> None:
        pane = self.panes.pop(name, None)
        if pane is None:
            return
        if self.engine is not None:
            self.engine.unload(name)
        await pane.remove()
        self.memory_panel.adapter_removed(name)
        if self.round is not None:
            self.round.drop(name)
        self.selected = min(self.selected, max(len(self.panes) - 1, 0))
        self._relayout()
        self._show_target()

    def action_set_temperature(self) -> None:
        def chosen(answer: str | None) -> None:
            if not answer:  # Esc, or nothing typed
                return
            try:
                value = float(answer)
            except ValueError:
                value = -1.0
            if not 0 <= value <= 2:
                self.notify("temperature must be a number from 0 to 2", severity="error")
                return
            self._update_settings(temperature=value)

        self.push_screen(
            AskScreen("Temperature (0 = greedy):", str(self.settings.temperature)), chosen
        )

    def action_set_max_tokens(self) -> None:
        def chosen(answer: str | None) -> None:
            if not answer:  # Esc, or nothing typed
                return
            if not answer.isdigit() or int(answer) < 1:
                self.notify("max new tokens must be a whole number above 0", severity="error")
                return
            self._update_settings(max_new_tokens=int(answer))

        self.push_screen(
            AskScreen("Max new tokens per reply:", str(self.settings.max_new_tokens)), chosen
        )

    def action_set_pane_setting(self, setting: str) -> None:
        """The selected pane's own temperature or seed (empty: back to the app's)."""
        pane = self.selected_pane
        if pane is None:
            return
        question = {
            "temperature": f"Temperature for {pane.shown_name} only (0 = greedy; empty: the "
            f"app's, {self.settings.temperature}):",
            "seed": f"Seed for {pane.shown_name} (the same seed repeats a sampled reply; "
            "empty: a new one each reply):",
        }[setting]

        def chosen(answer: str | None) -> None:
            if answer is None:  # Esc: as it was
                return
            if not answer:
                pane.set_override(setting, None)
                return
            try:
                value = float(answer) if setting == "temperature" else int(answer)
            except ValueError:
                value = -1
            if value < 0 or (setting == "temperature" and value > 2):
                self.notify(f"{setting}: not a valid value", severity="error")
                return
            pane.set_override(setting, value)

        self.push_screen(AskScreen(question, str(pane.overrides.get(setting, ""))), chosen)

    def action_export_results(self, fmt: str) -> None:
        if self.results is None:
            self.notify("no results file in this session (--results PATH)", severity="warning")
            return
        # On the writer's thread: after every line before it, and off the UI thread.
        self._results_writer.submit(self._export_results, self.results.path, fmt)

    def _export_results(self, path: Path, fmt: str) -> None:
        out = path.with_suffix(f".{fmt}")
        if out == path:  # --results chose a name with this very suffix
            out = path.with_suffix(f".export.{fmt}")
        try:
            write_text_atomic(out, export_results(read_results(path), fmt))
        except (OSError, ValueError) as err:
            self.call_from_thread(self.notify, f"export failed: {err}", severity="error")
            return
        self.call_from_thread(self.notify, f"saved {out}", title="results exported")

    def action_run_prompt_set(self) -> None:
        if self.blind.on:
            self.notify("leave blind mode (F3) to run a prompt set", severity="warning")
            return

        def chosen(answer: str | None) -> None:
            if answer:
                path = Path(answer).expanduser()
                self.run_worker(run_prompt_set(self, path), group="prompt-set", exclusive=True)

        self.push_screen(
            AskScreen(
                "Run a prompt set (JSON Lines, as lora-tui eval reads) through every pane:",
                placeholder="path/to/prompts.jsonl",
            ),
            chosen,
        )

    def action_toggle_thinking(self) -> None:
        self._update_settings(thinking=not self.settings.thinking)

    def _update_settings(self, **changes: float | int | bool) -> None:
        self.settings = replace(self.settings, **changes)
        thinking = "on" if self.settings.thinking else "off"
        self.notify(
            f"temperature {self.settings.temperature}, "
            f"max new tokens {self.settings.max_new_tokens}"
            + (f", thinking {thinking}" if self.can_think() else ""),
            title="settings",
        )

    def can_think(self) -> bool:
        return any(p.info is not None and p.info.can_think for p in self.panes.values())

    # --- command palette (ui/commands.py) ------------------------------------------------------

    def suggest(self, prompt: str) -> None:
        """Put a suggested prompt in the input, ready to edit or send."""
        prompt_input = self.main.query_one("#prompt", Input)
        prompt_input.value = prompt
        prompt_input.cursor_position = len(prompt)
        prompt_input.focus()


def run_app(args, suggestions: dict[str, list[str]] | None = None) -> int:
    """Check the foundation here (one clear line if it is wrong), then run the app."""
    from rich.console import Console

    from lora_tui.engine.artifacts import open_foundation
    from lora_tui.engine.worker import process_engine_factory

    tokenizer = Path(args.tokenizer) if args.tokenizer else None
    try:
        open_foundation(args.weights, tokenizer)
    except ArtifactError as err:
        Console(stderr=True, highlight=False).print(
            f"[red]lora-tui: error:[/] {err}", soft_wrap=True
        )
        return 1
    warnings.simplefilter("ignore")  # nothing may print over the UI
    factory = process_engine_factory(
        args.weights,
        tokenizer,
        not args.no_share,
        Path(args.log) if args.log else None,
        args.threads,
        panes=len(args.programs),
    )
    results = Path(args.results) if args.results else default_results_path(datetime.now())
    app = LoraTuiApp(list(args.programs), factory, suggestions=suggestions, results_path=results)
    app.run()
    return app.return_code or 0
