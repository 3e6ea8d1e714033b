"""What the UI and the engine say to each other: the engine's events, the client protocol
a UI drives an engine through (``EngineProcess``, or a test's fake), and the commands that
protocol becomes on the way to the worker process and its lanes. The engine's child
processes (the worker, its lanes, the pre-flight checker) all take these dataclasses over
a ``multiprocessing`` connection.

Every event about one adapter names it in the same field, ``adapter``, so a receiver
routes it without looking at what kind of event it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from lora_tui.engine.memory import MemorySample
from lora_tui.engine.types import (
    AdapterInfo,
    GenerationSettings,
    Message,
    ReplyEnd,
    ReplyStats,
    Sharing,
)

if TYPE_CHECKING:  # program.py imports torch, which a UI never loads
    from lora_tui.engine.loading import ProgramFacts

# --- about the engine ------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineReady:
    sharing: Sharing
    baseline_rss_mib: float
    foundation: str
    foundation_mib: float
    # Said when the lanes' threads are fixed although they would follow how many answer
    # (``threads.LaneLayout.note``): a pane answering alone then has only its share.
    threads_note: str | None = None


@dataclass(frozen=True)
class EngineFailed:
    error: str


@dataclass(frozen=True)
class FoundationPacked:
    """The worker has packed the foundation (by loading a program it never runs): where
    that load put its memory in the worker, which its lanes inherit at the same addresses
    (``memory.Holding``). The memory panel names those pages packed weights."""

    foundation: str
    process: int  # the worker
    ranges: tuple[tuple[int, int], ...]


# --- about one adapter ---------------------------------------------------------------------
# A load gives Loaded or LoadFailed; a reply gives Piece*, then ReplyDone.


@dataclass(frozen=True)
class Loaded:
    adapter: str
    info: AdapterInfo


@dataclass(frozen=True)
class LoadFailed:
    adapter: str
    path: str
    error: str


@dataclass(frozen=True)
class Piece:
    adapter: str
    text: str


@dataclass(frozen=True)
class ReplyDone:
    adapter: str
    text: str  # the whole reply, even when cancelled
    end: ReplyEnd
    stats: ReplyStats | None
    error: str | None = None
    # The oldest messages of the conversation (after a system message) that no longer fit
    # the context and were left out; whoever keeps the conversation stops sending them.
    forgotten: int = 0


@dataclass(frozen=True)
class NoEffect:
    """The adapter's logits on the load probe (``probe.py``) equal those of the base program
    over the same foundation, within the engine's tolerance: it answers as the base does
    (an untrained adapter, all-zero lora_B, the wrong target names). Sent once per load."""

    adapter: str
    base: str  # the base program's name
    max_logit_change: float  # the largest absolute change the adapter made to a logit

    @property
    def warning(self) -> str:
        """The one line its pane shows."""
        change = f"{self.max_logit_change:.1e}" if self.max_logit_change else "0.0"
        return f"no effect: its logits equal {self.base}'s (largest change {change})"


@dataclass(frozen=True)
class Departure:
    """An adapter's finished reply, scored under the base program over the same foundation:
    the base's log-probability of each token the adapter chose, and where the adapter first
    chose otherwise than the base's greedy choice. Sent after the reply's ``ReplyDone``
    (scoring runs when the base's lane has no reply under way), for the reply whose text is
    ``"".join(pieces)``."""

    adapter: str
    base: str  # the base program's name
    pieces: tuple[str, ...]  # each reply token's text, as it streamed ("" inside a character)
    logprobs: tuple[float, ...]  # the base's natural-log probability of each token
    departs_at: int | None  # index of the first token that is not the base's greedy one
    base_choice: str  # the text of the base's own choice there ("" when none departs)
    same_as_base: bool  # token for token the base's greedy reply, its end included

    @property
    def mean_logprob(self) -> float | None:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else None

    @property
    def summary(self) -> str:
        """The one line a status shows: "same as base", or where it departs."""
        if self.same_as_base:
            return "same as base"
        if self.departs_at is None:
            return f"follows {self.base} to its last token, then goes on"
        token = self.pieces[self.departs_at]
        return (
            f"departs from base at token {self.departs_at + 1} ({token.strip()!r}; "
            f"{self.base} would say {self.base_choice.strip()!r})"
        )


AdapterEvent = Loaded | LoadFailed | Piece | ReplyDone | NoEffect | Departure
EngineEvent = EngineReady | EngineFailed | FoundationPacked | AdapterEvent


# --- commands: what an EngineProcess sends its worker, and the worker its lanes -------------


@dataclass(frozen=True)
class Load:
    path: str
    name: str | None = None
    checked: tuple[ProgramFacts, float] | None = None  # a check already passed, and its time


@dataclass(frozen=True)
class Unload:
    name: str


@dataclass(frozen=True)
class Send:
    """Answer the last message of ``messages``, the adapter's whole conversation so far (the
    engine keeps no conversation, only the tokens it last ran, to reuse their K/V)."""

    adapter: str
    messages: tuple[Message, ...]
    settings: GenerationSettings


@dataclass(frozen=True)
class Cancel:
    names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Clear:
    """Stop these adapters' replies and drop their cached tokens."""

    names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class UseBase:
    """Score every other adapter of this foundation against ``name`` from now on (by
    default the first program its manifest calls a base)."""

    name: str


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class Probed:
    """From a lane to its router, right after a program loads: its last logits on the probe,
    for the router to compare with the base program's (never sent on to the UI)."""

    adapter: str
    base: bool  # the program is a base (its manifest entry's kind)
    tokens: tuple[int, ...]  # the probe it ran
    logits: bytes  # float32, one per token of the vocabulary


@dataclass(frozen=True)
class Replied:
    """From a lane to its router after an adapter's reply ends whole: what it answered, in
    tokens, for the router to have the base's lane score (never sent on to the UI)."""

    adapter: str
    prompt: tuple[int, ...]  # the prompt's tokens, chat template applied, as prefilled
    reply: tuple[int, ...]  # the tokens it chose, its stop token left out
    stopped: bool  # it ended on a stop token (else on its length)


@dataclass(frozen=True)
class Score:
    """From the router to the base's lane: score ``replied`` under ``base``."""

    base: str
    replied: Replied


@dataclass(frozen=True)
class UseThreads:
    """From the router to a lane: run the next steps on ``threads`` of its XNNPACK pool's
    threads (``threads.thread_shares``: every core while it works alone, its share while
    other lanes do too). Sent only when its share changes, and before the ``Send`` or
    ``Score`` that makes it busy, so its first step already runs on its share."""

    threads: int


@dataclass(frozen=True)
class Idle:
    """From a lane to its router, in the same batch as the events of what made it so: it
    has no reply and nothing to score, after the first ``seen`` Sends and Scores it was told
    (so one told meanwhile keeps it busy in the router's eyes). Never sent on to the UI."""

    seen: int


# --- to and from the pre-flight checker (preflight.py) --------------------------------------


@dataclass(frozen=True)
class Check:
    pte: Path
    ptd: Path
    packed: Path | None = None  # the foundation's packed weights on disk (packed.py)


@dataclass(frozen=True)
class CheckerReady:
    """The checker has imported the runtime and waits for programs."""


@dataclass(frozen=True)
class Checked:
    facts: ProgramFacts | None  # None when the program is refused
    error: str | None
    seconds: float


class FoundationEngine(Protocol):
    """Commands to the engine of one foundation; its events arrive through the callback it
    was started with. The engine keeps no conversation: each ``send`` carries every
    adapter's own."""

    def load(self, path: Path, name: str | None = None) -> None: ...
    def unload(self, name: str) -> None: ...
    def send(
        self, conversations: Mapping[str, Sequence[Message]], settings: GenerationSettings
    ) -> None:
        """Each named adapter answers the last (user) message of its conversation."""

    def cancel(self, names: list[str] | None = None) -> None: ...
    def clear(self, names: list[str] | None = None) -> None: ...
    def use_base(self, name: str) -> None:
        """Score the other adapters' replies against ``name`` (``Departure``)."""

    def memory(self) -> MemorySample | None: ...
    def close(self) -> None: ...


class EngineClient(FoundationEngine, Protocol):
    """What the UI talks to: the engines of every foundation open, as one."""

    def open_foundation(
        self, weights: Path, quantization: str | None, programs: Sequence[Path] = ()
    ) -> str:
        """Start an engine for another foundation, for ``programs`` to load over; the label
        their names carry. ``ValueError`` when it is open already."""


# Given the callback for events (called from any thread), start an engine.
EngineFactory = Callable[[Callable[[EngineEvent], None]], EngineClient]
