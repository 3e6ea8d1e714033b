"""The main screen: adapter panes side by side, the memory and tally panels, the vote bar and
the prompt.

It owns the panes (in the order they show), which one is selected, and whether a prompt goes
to all of them; its keys (``keys.py``) and the palette's commands (``palette.py``) act on
them. The engine's events for the panes arrive here from its reader thread; what a reply
does next is ``replies.py``'s, blind mode's and a prompt set's decisions are judging's
(``judging/blind.py``, ``judging/prompt_set.py``), and this screen shows them."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Container, Horizontal
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Header, Input

from lora_tui.common.literal import printable
from lora_tui.engine import protocol as events
from lora_tui.engine.protocol import EngineEvent
from lora_tui.engine.types import AdapterInfo
from lora_tui.format import ArtifactError
from lora_tui.judging.arena import LABELS
from lora_tui.judging.blind import BlindSession
from lora_tui.judging.evaluate import EvalResult, load_prompts
from lora_tui.judging.prompt_set import Ask, Done, PromptSetRun
from lora_tui.judging.rounds import Round
from lora_tui.ui.keys import MAIN_SCREEN_BINDINGS
from lora_tui.ui.messages import EngineEventArrived, PiecesReady
from lora_tui.ui.notices import LiteralNotices
from lora_tui.ui.opening import open_at_scale, open_programs
from lora_tui.ui.recovery import recover
from lora_tui.ui.replies import Replies
from lora_tui.ui.screens.dialogs import Dialogs
from lora_tui.ui.screens.diff import DiffScreen
from lora_tui.ui.screens.scores import ScoresScreen
from lora_tui.ui.session import Session
from lora_tui.ui.streaming import PieceBuffer
from lora_tui.ui.watching import (
    CheckpointsExported,
    CheckpointsExporting,
    WatchFailed,
    WatchMessage,
    show_watched,
    watch_in_thread,
)
from lora_tui.ui.widgets.adapter_pane import AdapterPane, PaneState
from lora_tui.ui.widgets.departure import NO_BASE
from lora_tui.ui.widgets.memory_panel import MemoryPanel
from lora_tui.ui.widgets.prompt_bar import PromptBar
from lora_tui.ui.widgets.tally_panel import TallyPanel
from lora_tui.ui.widgets.vote_bar import VoteBar

PANE_MIN_WIDTH = 36


class MainScreen(LiteralNotices, Screen[None]):
    BINDINGS = MAIN_SCREEN_BINDINGS
    # A maximized pane still shows the prompt, so the conversation can go on.
    ALLOW_IN_MAXIMIZED_VIEW = "Header, Footer, PromptBar, VoteBar"

    # `var`, not `reactive`: a reactive here repaints the whole screen when it changes,
    # which made every Tab cost a full-screen render.
    broadcast = var(True)  # a prompt goes to every pane, or to the selected one
    selected = var(0)

    class Ready(Message):
        """Posted once the layout exists, so the app can start the engine into it."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.panes: dict[str, AdapterPane] = {}  # in the order they show
        self.blind = BlindSession()
        self.replies = Replies(self.panes, session, self._round_over, self.notify)
        # A dialog shows over the app when asked, after this screen is mounted.
        show = lambda screen, answered: self.app.push_screen(screen, answered)  # noqa: E731
        self.dialogs = Dialogs(show, self.notify, session, self.panes)
        self.pieces = PieceBuffer()
        # The base each foundation's replies are scored against (``Departure``): its first
        # program the manifest calls a base, or the one the user chose, by foundation.
        self.bases: dict[str, str] = {}
        self.chosen_bases: set[str] = set()  # chosen (palette, --base): told to each engine
        self.departure_view = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield Container(id="panes")
            yield MemoryPanel()
            yield TallyPanel()  # in place of the memory panel in blind mode: it names adapters
        yield VoteBar()
        yield PromptBar()
        yield Footer()

    def on_mount(self) -> None:
        self.post_message(self.Ready())

    def on_resize(self) -> None:
        self.call_after_refresh(self._relayout)  # after the refresh, so the layout is new

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Under a dialog these keys do not run; the footer beneath it shows only the app's.
        return self.is_active

    @property
    def prompt(self) -> Input:
        return self.query_one("#prompt", Input)

    @property
    def memory_panel(self) -> MemoryPanel:
        return self.query_one(MemoryPanel)

    @property
    def vote_bar(self) -> VoteBar:
        return self.query_one(VoteBar)

    @property
    def selected_pane(self) -> AdapterPane | None:
        panes = list(self.panes.values())
        return panes[self.selected] if 0 <= self.selected < len(panes) else None

    # --- panes ------------------------------------------------------------------------------

    async def add_program(self, path: Path, name: str | None = None) -> None:
        """A pane for the program (named ``name``, else its file's), loaded by the engine."""
        first = name = name or path.stem
        copy = 2
        while name in self.panes:
            name, copy = f"{first}#{copy}", copy + 1
        pane = AdapterPane(name, len(self.panes) + 1, path)
        if self.blind.on:
            pane.set_alias("?")  # named by a letter at the next prompt
        self.panes[name] = pane
        await self.query_one("#panes").mount(pane)
        self._relayout()
        self._show_target()
        build = self.session.build
        if (engine := self.session.engine) is not None:
            engine.load(path, name)
        elif build is not None and build.running:
            build.show(pane)  # loaded with the others once the build is done
        else:
            pane.failed("no engine is running (the build failed or it kept stopping)")

    async def unload(self, name: str) -> None:
        pane = self.panes.pop(name, None)
        if pane is None:
            return
        if (engine := self.session.engine) is not None:
            engine.unload(name)
        await pane.remove()
        self.memory_panel.adapter_removed(name)
        self.chosen_bases.discard(name)
        self.bases = {f: base for f, base in self.bases.items() if base != name}
        self.replies.dropped(name)
        self.selected = min(self.selected, max(len(self.panes) - 1, 0))
        self._relayout()
        self._show_target()

    def reorder(self, names: list[str]) -> None:
        """Show the panes in this order (blind mode shuffles them for every prompt)."""
        ordered = {name: self.panes[name] for name in [*names, *self.panes]}
        self.panes.clear()
        self.panes.update(ordered)  # the same dict: the replies and dialogs hold it
        self._relayout()

    def _relayout(self) -> None:
        """The panes in their order: grid columns for the width, numbers, the selection.
        After panes come, go or move, or the terminal resizes."""
        panes = list(self.panes.values())
        grid = self.query_one("#panes")
        for index, pane in enumerate(panes):
            if grid.children[index] is not pane:
                grid.move_child(pane, before=index)
        width = grid.size.width or self.app.size.width
        columns = max(1, min(len(panes), width // PANE_MIN_WIDTH)) if panes else 1
        if grid.styles.grid_size_columns != columns:
            grid.styles.grid_size_columns = columns
        for index, pane in enumerate(panes):
            pane.set_index(index + 1)
        self._mark_selected()

    def _mark_selected(self) -> None:
        """Only the selection: what a Tab changes, with no look at the grid."""
        for index, pane in enumerate(self.panes.values()):
            pane.selected = index == self.selected

    def watch_selected(self) -> None:
        if self.is_mounted:
            self._mark_selected()
            self._show_target()
            pane = self.selected_pane
            if pane is not None and self.maximized is not None:
                self.maximize(pane, container=False)

    def watch_broadcast(self) -> None:
        if self.is_mounted:
            self._show_target()

    def _show_target(self) -> None:
        """Where the next prompt goes: every pane, or the selected one."""
        pane = self.selected_pane
        self.query_one(PromptBar).show_target(self.broadcast, pane.adapter_name if pane else None)

    def put_prompt(self, text: str) -> None:
        """Put ``text`` in the prompt, ready to edit or send."""
        self.prompt.value = text
        self.prompt.cursor_position = len(text)
        self.prompt.focus()

    # --- keys -------------------------------------------------------------------------------

    def action_select(self, number: int) -> None:
        if 1 <= number <= len(self.panes):
            self.selected = number - 1

    def action_select_step(self, step: int) -> None:
        if self.panes:
            self.selected = (self.selected + step) % len(self.panes)

    def action_toggle_broadcast(self) -> None:
        if self.blind.on:
            self.notify("in blind mode every adapter answers every prompt", severity="warning")
            return
        self.broadcast = not self.broadcast

    def action_maximize(self) -> None:
        if self.maximized is not None:
            self.minimize()
        elif self.selected_pane is not None:
            self.maximize(self.selected_pane, container=False)

    def action_diff(self) -> None:
        replies = {p: p.conversation.last_reply for p in self.panes.values()}
        answered = [p for p, reply in replies.items() if reply is not None]
        if len(answered) < 2:
            self.notify("the diff needs two panes with an answer", severity="warning")
            return
        left = answered.index(self.selected_pane) if self.selected_pane in answered else 0
        shown = [(p.shown_name, replies[p] or "") for p in answered]
        self.app.push_screen(DiffScreen(shown, left))

    async def action_toggle_departure(self) -> None:
        """Each pane's last reply shaded by how unlikely the base found each token, or back
        to its Markdown."""
        if not self.departure_view and not self.bases:
            self.notify(NO_BASE, severity="warning")
            return
        if not self.departure_view and self.blind.on:
            self.notify("leave blind mode (F3) to see departures from the base", severity="warning")
            return
        self.departure_view = not self.departure_view
        for pane in self.panes.values():
            await pane.show_departure(self.departure_view)

    async def action_regenerate(self, every_pane: bool) -> None:
        """Answer the last prompt again, in the selected pane or in all of them."""
        panes = list(self.panes.values()) if every_pane else [self.selected_pane]
        if await self.replies.regenerate([p for p in panes if p is not None]):
            self.vote_bar.close()

    async def action_clear(self) -> None:
        """Forget every conversation, in the panes and the engine."""
        if (engine := self.session.engine) is not None:
            engine.clear(None)
        self.replies.drop_kept("cleared")
        for pane in self.panes.values():
            await pane.clear()

    async def action_toggle_blind(self) -> None:
        panes = list(self.panes.values())
        answering = any(p.state is PaneState.GENERATING for p in panes)
        working = sum(p.state is not PaneState.ERROR for p in panes)
        if (why := self.blind.toggle(answering, working)) is not None:
            self.notify(why, severity="warning")
            return
        self.set_class(self.blind.on, "-blind")
        self.vote_bar.close()
        if not self.blind.on:
            for pane in panes:
                pane.set_alias(None)
            self.notify("names shown again; the tally is kept", title="blind mode off")
            return
        self.broadcast = True  # every pane answers every prompt
        if self.departure_view:  # the base's note would tell which pane it is
            await self.action_toggle_departure()
        await self.action_clear()  # what was said so far would give the names away
        for index, pane in enumerate(panes):
            pane.set_alias(LABELS[index])
        self.query_one(TallyPanel).show(self.blind.tally)
        self.notify(
            "names hidden; panes shuffle for every prompt; vote once all have answered",
            title="blind mode on",
        )

    # --- the prompt and the vote ------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    async def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        candidates = list(self.panes.values()) if self.broadcast else [self.selected_pane]
        candidates = [p for p in candidates if p is not None]
        if not text or not (targets := self.replies.targets(candidates)):
            return
        if self.blind.on and not (targets := await self._blind_round(targets)):
            return
        event.input.value = ""
        await self.replies.start_round(targets, text, blind=self.blind.on)

    async def _blind_round(self, targets: list[AdapterPane]) -> list[AdapterPane]:
        """Every adapter that works answers a blind prompt at once (one that failed to load
        sits it out), in fresh conversations and a new order, named by letters."""
        ready = [p for p in targets if p.can_answer and not self.replies.keeps(p)]
        working = sum(p.state is not PaneState.ERROR for p in self.panes.values())
        if (why := self.blind.refuses_prompt(len(ready), working)) is not None:
            self.notify(why, severity="warning")
            return []
        await self.action_clear()
        self.vote_bar.close()
        order = self.blind.order([p.adapter_name for p in ready])
        self.reorder(order)
        for index, name in enumerate(order):
            self.panes[name].set_alias(LABELS[index])
        return [self.panes[name] for name in order]

    def _round_over(self, round: Round) -> None:
        if (answers := self.blind.vote_due(round)) is not None:
            self.vote_bar.ask(answers)

    @on(VoteBar.Voted)
    def _voted(self, message: VoteBar.Voted) -> None:
        self.vote_bar.close()
        self.prompt.focus()
        reveal = self.blind.vote(self.replies.rounds.last, message.choice)
        if reveal is None:
            return
        if reveal.record is not None:
            if (results := self.session.results) is not None:
                results.append(reveal.record, None)
            self.query_one(TallyPanel).show(self.blind.tally)
        for pane in self.panes.values():
            if pane.alias is not None:
                pane.set_alias(pane.alias, revealed=True)
        self.notify(reveal.summary, title="revealed")

    # --- the engine's events (from its reader thread) ---------------------------------------

    def from_engine(self, event: EngineEvent) -> None:
        """On the engine's reader thread: streamed text waits in a buffer and the screen is
        told once per batch; every other event is a message."""
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
        with self.app.batch_update():  # every pane's new text in one frame: one layout
            for name, text in self.pieces.take().items():
                if (pane := self.panes.get(name)) is not None:
                    await pane.add_piece(text)

    @on(EngineEventArrived)
    async def _engine_event(self, message: EngineEventArrived) -> None:
        await self._flush_pieces()  # text that arrived before this event goes first
        event = message.event
        if isinstance(event, events.EngineReady):
            self.memory_panel.engine_ready(event)
        elif isinstance(event, events.FoundationPacked):
            self.memory_panel.foundation_packed(event)
        elif isinstance(event, events.EngineFailed):
            supervisor = self.session.supervisor
            await recover(event.error, self.panes.values(), self.replies, supervisor, self.notify)
        elif (pane := self.panes.get(event.adapter)) is None:
            return  # unloaded while the event was on its way
        elif isinstance(event, events.Loaded):
            self.memory_panel.adapter_loaded(event.info)
            await self._base_loaded(pane, event.info)
            await self.replies.loaded(pane, event.info)  # then it answers what it kept
        elif isinstance(event, events.LoadFailed):
            pane.failed(event.error)
        elif isinstance(event, events.ReplyDone):
            await self.replies.finish_reply(pane, event)
        elif isinstance(event, events.NoEffect):  # it answers as the base does
            pane.notice(event.warning)
        elif isinstance(event, events.Departure):
            await pane.departed(event)

    @on(AdapterPane.Failed)
    def _pane_failed(self) -> None:
        self.replies.settle()  # it misses the prompts it kept

    # --- the palette's commands (palette.py) -------------------------------------------------

    def load_programs(self, foundation: bool = False) -> None:
        """Ask for programs (over a foundation open, or a new ``foundation``) and open them."""
        self.dialogs.programs(
            lambda paths: self.run_worker(
                open_programs(paths, self.session.engine, self.add_program, self.notify)
            ),
            foundation,
        )

    async def use_as_base(self, pane: AdapterPane | None) -> None:
        """Score the other panes of its foundation against ``pane``'s program from now on."""
        if pane is None or pane.info is None:
            self.notify("select a loaded pane to use as the base", severity="warning")
            return
        foundation = pane.info.foundation
        others = {n for n in self.chosen_bases if self._foundation_of(n) == foundation}
        self.chosen_bases = (self.chosen_bases - others) | {pane.adapter_name}
        await self._base_loaded(pane, pane.info)
        self.notify(f"{pane.adapter_name}'s replies are what the others are scored against now")

    async def _base_loaded(self, pane: AdapterPane, info: AdapterInfo) -> None:
        """A program loaded (or chosen): the base of its foundation if it is the one chosen
        (the engine is told, again after a restart), else if it is the first base there."""
        name, foundation = pane.adapter_name, info.foundation
        wanted = self.session.base
        if wanted is not None and wanted in (name, *_file_names(pane.path)):
            self.chosen_bases.add(name)  # --base: chosen as it loads
        if name in self.chosen_bases:
            if (engine := self.session.engine) is not None:
                engine.use_base(name)
        elif info.kind != "base" or foundation in self.bases:
            return  # not a base, or its foundation has one already
        self.bases[foundation] = name
        for other in self.panes.values():
            other_is_base = other.adapter_name in self.bases.values()
            await other.set_base(other_is_base)

    def _foundation_of(self, name: str) -> str | None:
        pane = self.panes.get(name)
        return pane.info.foundation if pane is not None and pane.info is not None else None

    def open_at_scale(self) -> None:
        """Ask for an adapter open and a scale, and open it at that scale in a new pane."""
        pane = self.selected_pane

        def open_at(name: str, scale: float) -> None:
            source = self.panes[name]
            if source.path is None:
                self.notify(f"{name}: its program is not known", severity="error")
                return
            opening = open_at_scale(source.path, name, scale, self.add_program, self.notify)
            self.run_worker(opening)

        self.dialogs.adapter_scale(pane.adapter_name if pane else None, open_at)

    def copy_last_reply(self) -> None:
        pane = self.selected_pane
        reply = pane.conversation.last_reply if pane else None
        if pane is None or reply is None:
            self.notify("the selected adapter has not replied yet", severity="warning")
            return
        self.app.copy_to_clipboard(reply)
        self.notify(f"copied {pane.adapter_name}'s last reply ({len(reply)} characters)")

    def export_results(self, fmt: str) -> None:
        if self.session.results is None:
            self.notify("no results file in this session (--results PATH)", severity="warning")
            return
        self.session.results.export(fmt)

    def run_prompt_set(self) -> None:
        if self.blind.on:
            self.notify("leave blind mode (F3) to run a prompt set", severity="warning")
            return
        self.dialogs.prompt_set(
            lambda path: self.run_worker(self._prompt_set(path), group="prompt-set", exclusive=True)
        )

    async def _prompt_set(self, path: Path) -> None:
        """Every prompt of a ``lora-tui eval`` file through the panes ready now, each in a
        fresh conversation, scored as ``eval`` scores it, its progress in the header; then
        the scores."""
        try:
            cases = load_prompts([path])
        except ArtifactError as err:
            self.notify(str(err), title="prompt set", severity="error", timeout=15)
            return
        ready = [p.adapter_name for p in self.panes.values() if p.can_answer]
        if not ready:
            self.notify("no adapter is ready", severity="warning")
            return
        run, shown = PromptSetRun(cases, ready), printable(path.name)
        step = run.first()
        try:
            while isinstance(step, Ask):
                progress = f"prompt set {shown}: {step.number}/{step.total} · Esc stops"
                self.sub_title = progress
                step = run.scored(await self._ask(run.adapters, step))
                self._tell(step)
        finally:
            self.sub_title = None  # the app's again
        title = f"{path.name}: {step.answered} of {step.total} prompts"
        self.app.push_screen(ScoresScreen(step.report, title))

    async def _ask(self, adapters: list[str], step: Ask) -> dict[str, EvalResult]:
        """Ask one prompt of a set in fresh conversations: each adapter's answer, scored."""
        await self.action_clear()
        panes = [self.panes[n] for n in adapters if n in self.panes]
        panes = [p for p in panes if p.state is not PaneState.ERROR]
        if not panes:
            return {}
        round = await self.replies.start_round(panes, step.case.prompt, case=step.case)
        await round.finished.wait()
        return {name: await score for name, score in round.scores.items()}

    def _tell(self, step: Ask | Done) -> None:
        for note in step.notes:
            self.notify(note, title="prompt set", severity="warning")
        for name in step.left:
            why = f"{name} stopped answering; its scores are left out"
            self.notify(why, title="prompt set", severity="warning")

    # --- a training run watched (--watch; watching.py) --------------------------------------

    def watch_run(self) -> None:
        """The watcher on a thread worker: its new programs come back as messages."""
        if (watcher := self.session.watcher) is not None:
            work = partial(watch_in_thread, watcher, self.post_message)
            self.run_worker(work, name="watch", group="watch", thread=True)

    @on(CheckpointsExporting)
    @on(CheckpointsExported)
    @on(WatchFailed)
    async def _watched(self, message: WatchMessage) -> None:
        await show_watched(message, self.panes.values(), self.add_program, self.notify)


def _file_names(path: Path | None) -> tuple[str, ...]:
    """How ``--base`` may name a program: its path as given, its file's name or its stem."""
    return () if path is None else (str(path), path.name, path.stem)
