"""One adapter's pane: its conversation, streamed as Markdown, and a status line.

Its name (a file's), its errors (which quote paths), the prompts and the answers are shown
as written: ``literal`` text, never markup, with no control character."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import var
from textual.widgets import Markdown, ProgressBar, Static

from lora_tui.common.literal import literal, printable
from lora_tui.demo.build_child import BuildProgress
from lora_tui.engine.conversation import Conversation
from lora_tui.engine.protocol import Departure, ReplyDone
from lora_tui.engine.types import AdapterInfo, ReplyEnd, ReplyStats
from lora_tui.format import scale_label
from lora_tui.ui.widgets.departure import BASE_NOTE, shaded
from lora_tui.ui.widgets.thinking import ThinkingBlock, ThinkSplitter

BUILDING = "Building its program (the first run only: later starts reuse it)"
CONTEXT_FULL = (
    "context full: from here on the oldest messages are left out to make room "
    "(they stay on screen; Ctrl+L starts afresh)"
)
# A prompt sent before the pane could answer it, kept until it can.
WAITING_TO_LOAD = "waiting for this adapter to load; it answers this then"
WAITING_IN_TURN = "waiting for the answer above; it answers this next"


class PaneState(StrEnum):
    BUILDING = "building"  # its program is still being built (the demo's first run)
    LOADING = "loading"
    READY = "ready"
    GENERATING = "generating"
    CANCELLED = "cancelled"  # its last reply was cancelled; it takes a prompt as READY does
    ERROR = "error"  # it failed to load, or its engine died while it loaded

    @property
    def icon(self) -> str:
        return {
            PaneState.BUILDING: "◔",
            PaneState.LOADING: "◌",
            PaneState.READY: "●",
            PaneState.GENERATING: "◉",
            PaneState.CANCELLED: "○",
            PaneState.ERROR: "✖",
        }[self]


class AdapterPane(Vertical):
    """Shows one adapter and keeps its ``conversation`` (``engine/conversation.py``), which
    says what each prompt is sent with. The main screen routes engine events here by
    ``adapter_name``."""

    ALLOW_MAXIMIZE = True

    class Failed(Message):
        """It will not answer (its load, its build or its engine failed): the prompts it
        kept are missed."""

    # Watched, not repainting: the watchers update the status line, which is all that changes.
    state = var(PaneState.LOADING)
    selected = var(False)

    def __init__(self, adapter_name: str, index: int, path: Path | None = None) -> None:
        super().__init__(classes="adapter-pane")
        self.adapter_name = adapter_name
        self.path = path  # the program, to load it again into a new engine
        self.index = index
        self.conversation = Conversation()
        self.last_stats: ReplyStats | None = None
        self.together_tok_s: float | None = None  # with the panes that answered at once
        self.info: AdapterInfo | None = None
        self.detail = ""
        # Its own settings over the app's (temperature, seed), from the palette.
        self.overrides: dict[str, float | int] = {}
        self.alias: str | None = None  # blind mode: the letter shown instead of the name
        self.revealed = False  # blind mode: the vote is in, the name shows beside the letter
        self._reply: Markdown | None = None  # the reply streaming in, if any
        self._streamed: list[str] = []  # its text so far
        self._splitter = ThinkSplitter()
        self._thinking: ThinkingBlock | None = None  # its <think> block, if it has one
        self._waiting: list[Static] = []  # the note under each prompt it keeps to answer
        # Its last reply scored under the base (the engine's ``Departure``), kept for that
        # reply only; shown on the status line, and shaded token by token in the view.
        self.departure: Departure | None = None
        self.is_base = False  # the others' replies are scored against this program
        self.showing_departure = False  # the departure view is on
        self._last_reply: Markdown | None = None  # the last reply's Markdown, shown or hidden
        self._departure_shown: Static | None = None  # what the view shows for it

    def compose(self) -> ComposeResult:
        yield VerticalScroll(classes="conversation")
        yield Static(classes="status")

    def on_mount(self) -> None:
        status = self.query_one(".status", Static)
        status.add_class(f"-{self.state}")
        status.set_class(self.selected, "-selected")
        self._update_titles()
        self._update_status()
        self._update_border()

    # State and selection show on the one-line status bar (and errors on the border), never
    # as a class or border change of the pane: either repaints or restyles the whole
    # conversation below it, which costs tens of milliseconds on a key press.
    def watch_state(self, old: PaneState, new: PaneState) -> None:
        if self.is_mounted:
            status = self.query_one(".status", Static)
            status.remove_class(f"-{old}")
            status.add_class(f"-{new}")
            self._update_status()
            self._update_border()

    def watch_selected(self, selected: bool) -> None:
        if self.is_mounted:
            self.query_one(".status", Static).set_class(selected, "-selected")
            self._update_status()

    def _update_border(self) -> None:
        if self.state is PaneState.ERROR:
            self.styles.border = ("round", self.app.get_css_variables()["error"])

    def set_index(self, index: int) -> None:
        if index != self.index:
            self.index = index
            self._update_titles()

    def set_alias(self, alias: str | None, revealed: bool = False) -> None:
        """Blind mode: show ``alias`` in place of the name, and the name once ``revealed``."""
        self.alias, self.revealed = alias, revealed
        self._update_titles()

    @property
    def shown_name(self) -> str:
        """The name, or in blind mode the letter (with the name once the vote is in)."""
        if self.alias is None:
            return self.adapter_name
        return f"{self.alias} = {self.adapter_name}" if self.revealed else self.alias

    def _update_titles(self) -> None:
        self._update_status_if_mounted()  # blind mode hides the departure, which tells
        hotkey = f"{self.index}" if self.index <= 9 else "·"
        self.border_title = literal(f"[{hotkey}] {self.shown_name}")
        if self.alias is not None and not self.revealed:
            self.border_subtitle = "hidden until you vote"
            return
        if self.info is None:
            return
        if self.info.kind == "base":
            subtitle = "base model"
        elif self.info.rank and self.info.target_modules:
            subtitle = f"r={self.info.rank} · {len(self.info.target_modules)} targets"
        else:
            subtitle = "rank unknown (no manifest)"
        if self.info.scale is not None:  # a scaled copy, or lora-export --scale's program
            subtitle += f" · LoRA {scale_label(self.info.scale)}"
        if self.info.quantization not in (None, "fp32"):
            subtitle += f" · {self.info.quantization}"
        self.border_subtitle = literal(subtitle)  # the quantization is the manifest's

    def _update_status_if_mounted(self) -> None:
        if self.is_mounted:
            self._update_status()

    def _update_status(self) -> None:
        parts = [f"{'▶ ' if self.selected else ''}{self.state.icon} {self.state}"]
        if self.departure is not None and (self.alias is None or self.revealed):
            parts.append(self.departure.summary)  # the model's tokens: literal, below
        if self.last_stats:
            stats = self.last_stats
            parts.append(f"TTFT {stats.ttft_s:.2f} s")
            parts.append(f"{stats.decode_tok_s:.1f} tok/s")
            if self.together_tok_s is not None:
                parts.append(f"{self.together_tok_s:.1f} together")
            if stats.reused_tokens:
                parts.append(f"{stats.reused_tokens} cached")
        if "temperature" in self.overrides:
            parts.append(f"T {self.overrides['temperature']}")
        if "seed" in self.overrides:
            parts.append(f"seed {self.overrides['seed']}")
        if self.conversation.forgotten:
            parts.append(f"{self.conversation.forgotten} left out")
        if self.detail:
            parts.append(self.detail)
        # One fixed-height line: no layout pass, so a status change repaints just this line.
        self.query_one(".status", Static).update(literal(" · ".join(parts)), layout=False)

    @property
    def can_answer(self) -> bool:
        """Loaded, and not answering now: it takes the next prompt."""
        return self.state in (PaneState.READY, PaneState.CANCELLED)

    @property
    def scroll_view(self) -> VerticalScroll:
        """Where the conversation shows."""
        return self.query_one(".conversation", VerticalScroll)

    # --- engine events ---------------------------------------------------------------------

    def building(self, progress: BuildProgress | None, elapsed: str) -> None:
        """Its program is not built yet: how far the build is, and how long it has taken."""
        if self.state is not PaneState.BUILDING:
            self.state = PaneState.BUILDING
            self.scroll_view.mount(
                Static(BUILDING, classes="build-progress"),
                ProgressBar(show_eta=False, classes="build-progress"),
            )
        step = f"\n{progress.step}" if progress and progress.step else ""
        phase = progress.phase if progress else "starting"
        self.query_one(".build-progress", Static).update(literal(f"{BUILDING}\n\n{phase}{step}"))
        if progress is not None:
            self.query_one(ProgressBar).update(total=progress.total, progress=progress.count)
        self.detail = f"{progress.count}/{progress.total} · {elapsed}" if progress else elapsed
        self._update_status()

    def loading(self) -> None:
        self.query(".build-progress").remove()
        self.state = PaneState.LOADING
        self.detail = ""
        self._update_status()

    def loaded(self, info: AdapterInfo) -> None:
        self.info = info
        self.state = PaneState.READY
        self._update_titles()
        for note in self._waiting:
            note.update(WAITING_IN_TURN)

    def failed(self, error: str) -> None:
        self.query(".build-progress").remove()
        self.detail = ""
        self.state = PaneState.ERROR
        self.scroll_view.mount(Static(literal(error), classes="error-text"))
        self.post_message(self.Failed())

    async def keep(self, user_text: str) -> None:
        """A prompt it cannot answer yet (it is still loading, or answers one kept before):
        shown now with a note, answered by ``start_reply`` in the order kept."""
        loading = self.state in (PaneState.LOADING, PaneState.BUILDING)
        waiting = WAITING_TO_LOAD if loading else WAITING_IN_TURN
        note = Static(waiting, classes="notice", markup=False)
        user = Static(literal(user_text), classes="user-message")
        await self.scroll_view.mount(user, note)
        self.conversation.keep(user_text)
        self._waiting.append(note)
        self.scroll_view.anchor()

    def missed(self, why: str) -> None:
        """The prompts it kept will not be answered: each says so where it waited."""
        self.conversation.missed(why)
        for note in self._waiting:
            note.update(literal(f"not sent: {why}"))
        self._waiting.clear()

    async def start_reply(self, user_text: str) -> None:
        """Answer ``user_text``; if prompts were kept, it is the first of them (shown already,
        its reply goes in place of its note)."""
        self.conversation.ask(user_text)
        shown = self.scroll_view
        await self._forget_departure()  # it was the reply before this one's
        self._reply = self._last_reply = Markdown(classes="assistant-message")
        self._streamed = []
        self._splitter = ThinkSplitter()
        self._thinking = None
        if self._waiting:
            note = self._waiting.pop(0)
            await shown.mount(self._reply, before=note)
            await note.remove()
        else:
            await shown.mount(Static(literal(user_text), classes="user-message"))
            await shown.mount(self._reply)
        shown.anchor()
        self.detail = ""
        self.together_tok_s = None
        self.state = PaneState.GENERATING

    def streamed_text(self) -> str:
        """What the reply under way (or the last) has streamed so far."""
        return "".join(self._streamed)

    async def add_piece(self, text: str) -> None:
        # Appended here rather than through a MarkdownStream task, so the app can batch
        # every pane's text into one frame (one layout) per flush.
        if self._reply is not None:
            self._streamed.append(text)
            await self._show(self._splitter.feed(text))

    async def _show(self, runs: list[tuple[bool, str]]) -> None:
        """Thinking goes to the reply's thinking block, the rest to its answer."""
        for thinking, text in runs:
            if thinking:
                if self._thinking is None:
                    self._thinking = ThinkingBlock()
                    await self.scroll_view.mount(self._thinking, before=self._reply)
                self._thinking.append(printable(text))
            elif self._reply is not None:
                if self._thinking is not None and not self._thinking.collapsed:
                    self._thinking.finish()
                await self._reply.append(printable(text))  # Markdown, not markup

    async def finish_reply(self, done: ReplyDone) -> bool:
        """Show how the reply ended; False if the pane shows no reply (it was cleared while
        the adapter answered), so there is nothing to keep."""
        if self.state is not PaneState.GENERATING:
            return False
        await self._show(self._splitter.flush())
        if self._thinking is not None:
            self._thinking.finish()
        self._reply = self._thinking = None
        note = self.conversation.answered(done).note
        if done.forgotten and self.conversation.forgotten == done.forgotten:
            self.notice(CONTEXT_FULL)  # said once a conversation, not every turn
        if done.stats:
            self.last_stats = done.stats
        if done.end is ReplyEnd.ERROR:
            await self.scroll_view.mount(
                Static(literal(done.error or "error"), classes="error-text")
            )
        self.detail = note
        self.state = PaneState.CANCELLED if done.end is ReplyEnd.CANCELLED else PaneState.READY
        self._update_status()
        if self.showing_departure and self.is_base:
            await self._show_departure()  # the others' is shown when it is scored
        return True

    def show_together(self, tok_s: float) -> None:
        """The panes that answered this prompt at once made ``tok_s`` between them."""
        self.together_tok_s = tok_s
        self._update_status()

    async def engine_lost(self, error: str) -> ReplyDone | None:
        """The engine process is gone: a reply in progress ends with what had arrived (and
        that end is returned)."""
        if self.state is PaneState.GENERATING:
            partial = "".join(self._streamed)
            done = ReplyDone(self.adapter_name, partial, ReplyEnd.ERROR, None, error)
            await self.finish_reply(done)
            return done
        if self.state is PaneState.LOADING:
            self.failed(error)
        return None

    def set_override(self, setting: str, value: float | int | None) -> None:
        if value is None:
            self.overrides.pop(setting, None)
        else:
            self.overrides[setting] = value
        self._update_status()

    async def retract_last_exchange(self) -> str | None:
        """Take the last prompt and its reply off the pane, to answer it again; returns the
        prompt (None if there is nothing to answer again)."""
        if not self.can_answer or (prompt := self.conversation.retract()) is None:
            return None
        await self._forget_departure()
        shown = list(self.scroll_view.children)
        asked = [i for i, w in enumerate(shown) if w.has_class("user-message")]
        if asked:
            await self.scroll_view.remove_children(shown[asked[-1] :])
        self.detail = ""
        return prompt

    def notice(self, text: str) -> None:
        self.conversation.notice(text)
        self.scroll_view.mount(Static(literal(text), classes="notice"))

    async def clear(self) -> None:
        self._reply = self._thinking = None
        self.departure = self._last_reply = self._departure_shown = None
        await self.scroll_view.remove_children()
        self.conversation.clear()
        self._waiting.clear()
        self.detail = ""
        if self.state in (PaneState.CANCELLED, PaneState.GENERATING):
            self.state = PaneState.READY
        self._update_status()

    # --- departure from the base --------------------------------------------------------

    async def departed(self, departure: Departure) -> bool:
        """Its reply scored under the base: kept if it is the last reply shown and whole
        (False: a newer reply has started, or the pane was cleared since)."""
        finished = self.state is not PaneState.GENERATING
        if not finished or self.conversation.last_reply != "".join(departure.pieces):
            return False
        self.departure = departure
        self._update_status()
        if self.showing_departure:
            await self._show_departure()
        return True

    async def set_base(self, is_base: bool) -> None:
        if is_base != self.is_base:
            self.is_base = is_base
            if self.showing_departure:
                await self._show_departure()

    async def show_departure(self, on: bool) -> None:
        """The departure view on (the last reply's tokens shaded) or off (its Markdown)."""
        self.showing_departure = on
        await self._show_departure()

    async def _show_departure(self) -> None:
        """What the view shows under the last reply: its shaded tokens in place of its
        Markdown, or for the base a note that nothing is scored against it."""
        if self._departure_shown is not None:
            await self._departure_shown.remove()
            self._departure_shown = None
        reply = self._last_reply
        hidden = self.alias is not None and not self.revealed  # it would tell the base
        if reply is not None:
            reply.display = True
        if not self.showing_departure or hidden:
            return
        if self.departure is not None and reply is not None:
            text = shaded(self.departure)
            text.append("\n\n")
            text.append(printable(self.departure.summary), "italic")
            self._departure_shown = Static(text, classes="departure")
            reply.display = False
        elif self.is_base:
            self._departure_shown = Static(BASE_NOTE, classes="departure-note", markup=False)
        else:
            return
        if reply is not None:
            await self.scroll_view.mount(self._departure_shown, after=reply)
        else:
            await self.scroll_view.mount(self._departure_shown)

    async def _forget_departure(self) -> None:
        """A newer reply starts, or the last is taken back: its departure goes with it."""
        self.departure = None
        if self._departure_shown is not None:
            await self._departure_shown.remove()
            self._departure_shown = None
        if self._last_reply is not None:
            self._last_reply.display = True
        self._last_reply = None
        self._update_status()
