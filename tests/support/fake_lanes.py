"""The engine worker's router over stand-in hosts, for tests of its routing without a model.

``serve_router`` runs in a spawned process as the real worker runs ``Router.serve``, with
the real lane loop forked per lane, but over ``FakeHost``: what a program does is in its
file name (``FakeHost``), so a test can hold a check for as long as it likes, stream a reply
until it is cancelled, or hang a step for ever.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from lora_tui.engine.lanes import Router
from lora_tui.engine.protocol import Departure, Piece, Probed, Replied, ReplyDone
from lora_tui.engine.threads import LaneLayout
from lora_tui.engine.types import (
    AdapterInfo,
    EngineError,
    GenerationSettings,
    MemoryBreakdown,
    Message,
    ReplyEnd,
)
from lora_tui.engine.worker import _lane_main

Event = Piece | ReplyDone
HOLD_LIMIT_S = 120.0  # a held check gives up after this, so nothing is left running


class FakeFoundation:
    path = Path("/artifacts/foundation.ptd")

    def entry_for(self, program: Path) -> tuple[str, None]:
        return program.stem, None


class FakePreflight:
    def forget(self) -> None:
        pass


class FakeHost:
    """What the router and a lane use of a ``ModelHost``. By the program's name:

    * ``slow*``: its check waits until a file named like it with ``.go`` exists;
    * ``stuck*``: the first step of its reply never returns;
    * ``endless*``: its reply streams until it is cancelled;
    * ``gauge*``: its reply streams, until it is cancelled, how many threads its lane was
      told to use, a piece a step;
    * ``base*``: a base program; ``zero*``: its load probe gives the base's logits;
    * any other: answers "hello" in two pieces (tokens 3 and 4, after a prompt of 1 and 2),
      and a base scores it as departing at its second token, "lo", where it says "p".

    A program that does not exist fails its check, as a missing file does.
    """

    def __init__(self) -> None:
        self.foundation = FakeFoundation()
        self.sessions: dict[str, Path] = {}
        self.infos: dict[str, AdapterInfo] = {}
        self.replies: list[tuple[str, Iterator[Event]]] = []
        self.scores: list[tuple[str, Replied]] = []  # (base, reply): scored in a later step
        self.cancelled: set[str] = set()
        self._preflight = FakePreflight()
        self.measure = None
        self.threads = 0  # its pool's threads in use: set in a lane
        self.packed = None  # no packed file: the router loads a seed, as without one

    # --- the router's side ---

    def checked(self, pte: Path) -> tuple[None, float]:
        if not pte.exists():
            raise EngineError(f"{pte}: no such program")
        if pte.stem.startswith("slow"):
            deadline = time.monotonic() + HOLD_LIMIT_S
            while not pte.with_suffix(".go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return None, 0.0

    def end_checks(self, idle_s: float = 0.0, wait: bool = True) -> float | None:
        return None

    def in_lane(self, engine: int, threads: int) -> None:
        self.threads = threads

    def use_threads(self, threads: int) -> None:
        self.threads = threads

    def hold_until_loaded(self, seed: object | None) -> None:
        pass

    # --- a lane's side ---

    def accept_check(self, pte: Path, facts: object, seconds: float) -> None:
        pass

    def load(self, pte: Path, name: str | None = None) -> AdapterInfo:
        name = name or pte.stem
        memory = MemoryBreakdown(None, None, 0.0)
        info = AdapterInfo(
            name, str(pte), "program", None, None, 0.0, 0.0, 0, 0, None, None, None, None, memory
        )
        self.sessions[name], self.infos[name] = pte, info
        return info

    def probed(self, name: str) -> list[Probed]:
        """A load probe: ``base*`` programs are bases, ``zero*`` ones give the base's logits
        and the others a logit 0.5 off."""
        program = self.sessions[name].stem
        logits = array("f", [1.0, -2.0, 0.5 if program.startswith(("base", "zero")) else 1.0])
        return [Probed(name, program.startswith("base"), (1, 5, 7), logits.tobytes())]

    def unload(self, name: str) -> list[Event]:
        self.sessions.pop(name, None)
        self.replies = [(n, r) for n, r in self.replies if n != name]
        return []

    @property
    def busy(self) -> bool:
        return bool(self.replies or self.scores)

    def idle_chore_s(self) -> float | None:
        return None

    def score(self, base: str, replied: Replied) -> None:
        if base in self.sessions:
            self.scores.append((base, replied))

    def start(self, name: str, messages: Sequence[Message], settings: GenerationSettings) -> None:
        if name in self.sessions and all(n != name for n, _ in self.replies):
            self.cancelled.discard(name)
            self.replies.append((name, self._reply(name, self.sessions[name].stem)))

    def cancel(self, names: list[str] | None = None) -> None:
        self.cancelled.update(n for n, _ in self.replies if names is None or n in names)

    def clear(self, names: list[str] | None = None) -> list[Event]:
        return []

    def step(self) -> list[Event | Replied | Departure]:
        if not self.replies:
            if not self.scores:
                return []
            base, replied = self.scores.pop(0)
            pieces = ("hel", "lo")
            return [Departure(replied.adapter, base, pieces, (-0.2, -3.0), 1, "p", False)]
        name, reply = self.replies.pop(0)
        event = next(reply)
        if not isinstance(event, ReplyDone):
            self.replies.append((name, reply))
            return [event]
        whole = event.end is ReplyEnd.STOP
        return [event, Replied(name, (1, 2), (3, 4), True)] if whole else [event]

    def _reply(self, name: str, program: str) -> Iterator[Event]:
        if program.startswith("stuck"):
            while True:
                time.sleep(3600)  # as a forward stuck in native code: nothing comes back
        if program.startswith("gauge"):
            while name not in self.cancelled:
                time.sleep(0.01)
                yield Piece(name, str(self.threads))
            yield ReplyDone(name, "", ReplyEnd.CANCELLED, None)
            return
        if program.startswith("endless"):
            text = ""
            while name not in self.cancelled:
                time.sleep(0.01)
                text += "x"
                yield Piece(name, "x")
            yield ReplyDone(name, text, ReplyEnd.CANCELLED, None)
            return
        yield Piece(name, "hel")
        yield Piece(name, "lo")
        yield ReplyDone(name, "hello", ReplyEnd.STOP, None)


def serve_router(conn: Connection, max_lanes: int, step_limit_s: float | None = None) -> None:
    """The worker's loop over a ``FakeHost`` (``step_limit_s``: the lanes' watchdog; None:
    the router's default), its lanes sharing ``max_lanes`` cores as the engine's default
    layout does where the pool can be resized."""
    limits = {} if step_limit_s is None else {"step_limit_s": step_limit_s}
    layout = LaneLayout(max_lanes, max_lanes, max_lanes, resizing=True)
    router = Router(conn, FakeHost(), _lane_main, layout, 15.0, **limits)  # type: ignore[arg-type]
    router.serve()
