"""Lanes: adapter programs answering at the same time, one process per core, over one packed
foundation.

``forward`` holds the GIL, so two programs run at once only in two processes, and XNNPACK
packs each process's weights for itself (540 MiB at fp32 for SmolLM2-135M). Normally the
foundation's packed weights are in a file (``packed.py``) that every lane maps: the page
cache holds one copy for all, and each lane packs only its own adapters' weights. Without
one (sharing off, or a file that could not be made) the worker packs the foundation once,
by loading the first program itself (the seed, never run), and then forks its lanes: each
starts with the packed foundation as pages it shares copy-on-write with the worker and
every other lane, which the kernel keeps shared because nothing writes to packed weights.
The seed's own KV cache and buffers serve no one: once every lane is forked the worker lets
the seed go, and each lane lets its inherited copy go after its own first load, which holds
the packed weights from then on.

The worker becomes the lanes' router: it checks every program first (the pre-flight), gives
each to the lane with the fewest, and forwards commands to the lanes that own the adapters
they name and events back to the UI. A lane is the old worker loop (``serve`` on a
``ModelHost``) with its own thread pool, laid out by ``lane_layout``: each lane's pool has
every core, and the router tells each lane how many of them to use (``UseThreads``) whenever
the number of busy lanes changes, so a pane answering alone has every core and lanes
answering at once never spin more threads than there are cores. A lane is busy from the
router's ``Send`` or ``Score`` until it says it is ``Idle`` again (scoring is work too).
Where the pool cannot be resized, or ``--threads`` fixes it, each lane's pool is fixed.

The router's loop never waits on a program. Checks (up to two minutes each) and the seed's
load run on a thread of their own, one program at a time in the order asked, while the loop
goes on forwarding events and routing Send and Cancel; a command for an adapter still being
checked waits for it, so each adapter sees its commands in the order they were sent. A
lane stuck in one step is ended by its own watchdog (``step_watch``): its panes say so and
the other lanes go on. A lane that dies any other way ends the worker, and the UI restarts
the engine as it does for any crash.

The worker's own pool has one thread while it seeds, because a pool with worker threads
cannot be torn down in a forked child (its threads did not come along); a pool of one has
none, and each lane replaces it.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING

from lora_tui.common.lifetime import die_with_parent
from lora_tui.engine.pages import trim
from lora_tui.engine.probe import NoEffectWatch
from lora_tui.engine.protocol import (
    Cancel,
    Clear,
    EngineEvent,
    EngineFailed,
    FoundationPacked,
    Idle,
    Load,
    LoadFailed,
    Piece,
    Probed,
    Replied,
    ReplyDone,
    Score,
    Send,
    Shutdown,
    Unload,
    UseBase,
    UseThreads,
)
from lora_tui.engine.threads import LaneLayout
from lora_tui.engine.types import EngineError, ReplyEnd
from lora_tui.format import one_line

if TYPE_CHECKING:  # both import torch: the UI imports this module (for step_watch) and never torch
    from lora_tui.engine.host import ModelHost
    from lora_tui.engine.session import AdapterSession

SEED = "\0seed"  # not a name a user can give: it never shows up as an adapter
# The longest one step (a prefill chunk or a token) or one load may take in a lane. A 1B
# model's prefill chunk takes seconds on two cores, loading a program (which runs one) tens.
STEP_LIMIT_S = 120.0
STUCK = signal.SIGALRM  # what ends a lane whose step ran over the limit

# A lane's loop: serve commands from the connection with the host until it closes, each
# step under ``step_watch`` with the limit given.
LaneLoop = Callable[[Connection, "ModelHost", float], None]


@contextmanager
def step_watch(limit_s: float) -> Iterator[None]:
    """In a lane: end this process if what runs inside takes longer than ``limit_s``.

    A forward stuck in native code holds the GIL and never returns, so no Python code, in
    the lane or a thread of it, can stop it; the kernel can. SIGALRM's default action ends
    the process without running anything of it, and the router, seeing a lane ended by
    SIGALRM, tells that lane's panes and lets the others go on. (The router could instead
    watch for lanes gone quiet, but it would need to know when a lane is busy: a heartbeat
    per step and a count of commands in flight. The lane knows when a step starts and
    ends.) A timer costs two system calls a step, nothing beside a forward."""
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@dataclass
class Lane:
    pid: int
    conn: Connection
    threads: int  # of its pool's threads, how many it was last told to use
    adapters: dict[str, str] = field(default_factory=dict)  # name -> program path
    replies: dict[str, list[str]] = field(default_factory=dict)  # under way: what streamed
    told: int = 0  # Sends and Scores told it
    seen: int = 0  # of those, how many it had seen when it last said it was Idle

    @property
    def busy(self) -> bool:
        return self.told > self.seen


class Router:
    """The worker's side: checks programs, forks lanes, routes commands and events."""

    def __init__(
        self,
        app: Connection,
        host: ModelHost,
        lane_loop: LaneLoop,
        layout: LaneLayout,
        checker_idle_s: float,
        step_limit_s: float = STEP_LIMIT_S,
    ) -> None:
        self.app = app
        self.host = host
        self.lane_loop = lane_loop
        self.layout = layout
        self.checker_idle_s = checker_idle_s
        self.step_limit_s = step_limit_s
        self.lanes: list[Lane] = []
        self.seed: AdapterSession | None = None  # held so its packed weights stay cached
        self.packed: FoundationPacked | None = None  # where the seed's load put its memory
        self.no_effect = NoEffectWatch()  # each program's load probe, against the base's
        # What the other adapters are compared with: the first base program to load, or
        # the program the UI names (``UseBase``).
        self.base: str | None = None
        # Adapters being checked, each with the commands for it that arrived meanwhile.
        self.checking: dict[str, list[object]] = {}
        self._to_check: queue.SimpleQueue[tuple[Load, str] | None] = queue.SimpleQueue()
        self._checked, self._check_done = mp.Pipe(duplex=False)  # checks thread -> loop
        self._checks = threading.Thread(target=self._check_loads, daemon=True, name="checks")

    @property
    def owners(self) -> dict[str, Lane]:
        return {name: lane for lane in self.lanes for name in lane.adapters}

    def serve(self) -> None:
        """Until the UI says to stop or goes away, or a lane dies."""
        self._checks.start()
        try:
            while True:
                lanes = {lane.conn: lane for lane in self.lanes}
                for conn in wait([self.app, self._checked, *lanes]):
                    if conn is self.app:
                        command = self.app.recv()
                        if isinstance(command, Shutdown):
                            return
                        self.route(command)
                    elif conn is self._checked:
                        self.place(self._checked.recv())
                    elif lanes[conn] in self.lanes:  # not stopped since the wait
                        self.forward(lanes[conn])
        except (EOFError, OSError):
            return  # the UI is gone
        finally:
            self.close()

    def close(self) -> None:
        """End the lanes: each stops when its connection closes; reap them. The checks
        thread stops after the check it is in, if any (the worker's exit ends it)."""
        self._to_check.put(None)
        for lane in self.lanes:
            lane.conn.close()
        for lane in self.lanes:
            _reap(lane.pid)
        self.lanes.clear()

    # --- from the UI ---------------------------------------------------------------------

    def route(self, command: object) -> None:
        if isinstance(command, Load):
            name = self._name_of(command)
            if name in self.checking:
                self.checking[name].append(command)  # a second load of it: after the first
            else:
                self.checking[name] = []
                self._to_check.put((command, name))
        elif isinstance(command, UseBase):
            self.base = command.name
            self.app.send(self.no_effect.compare(self.base))
        elif isinstance(command, Unload | Send):
            name = command.name if isinstance(command, Unload) else command.adapter
            if name in self.checking:
                self.checking[name].append(command)
            elif (lane := self.owners.get(name)) is not None:
                if isinstance(command, Unload):
                    lane.adapters.pop(name, None)
                    self._forget(name)
                    _tell(lane, command)
                else:
                    lane.replies.setdefault(name, [])
                    self._give_work(lane, command)
        elif isinstance(command, Routed):
            for name, held in self.checking.items():
                if command.names is None or name in command.names:
                    held.append(replace(command, names=(name,)))
            for lane, names in self._split(command.names):
                _tell(lane, replace(command, names=names))

    def _split(self, names: tuple[str, ...] | None) -> list[tuple[Lane, tuple[str, ...] | None]]:
        """Which lanes a command concerns, each with its share of the names (None: all)."""
        if names is None:
            return [(lane, None) for lane in self.lanes]
        owners = self.owners
        return [
            (lane, mine)
            for lane in self.lanes
            if (mine := tuple(n for n in names if owners.get(n) is lane))
        ]

    def _name_of(self, load: Load) -> str:
        path = Path(load.path)
        try:
            return load.name or self.host.foundation.entry_for(path)[0]
        except (OSError, RuntimeError):  # a path that cannot be resolved fails its check
            return path.stem

    def place(self, outcome: Load | LoadFailed) -> None:
        """A check is done: the program goes to a lane (or its failure to the UI), then the
        commands that waited for it follow it."""
        name = outcome.adapter if isinstance(outcome, LoadFailed) else outcome.name
        assert name is not None
        if self.packed is not None:  # the seed loaded with this check: say where it lies
            self.app.send([self.packed])
            self.packed = None
        held = self.checking.pop(name, [])
        failed = outcome if isinstance(outcome, LoadFailed) else self._give_lane(outcome, name)
        if failed is not None:
            self.app.send([failed])
        for command in held:
            self.route(command)

    def _give_lane(self, load: Load, name: str) -> LoadFailed | None:
        try:
            if name in self.owners or name == SEED:
                raise EngineError(f"{load.path}: an adapter named '{name}' is already loaded")
            lane = self._lane_for_new()
        except Exception as err:  # EngineError, or a fork that failed
            return LoadFailed(name, load.path, one_line(err))
        lane.adapters[name] = load.path
        _tell(lane, load)
        return None

    # --- the checks thread ---------------------------------------------------------------

    def _check_loads(self) -> None:
        """Check each program in turn, and the first that passes loads here as the seed; each
        outcome goes to the loop. A check is a conversation with the pre-flight child, so this
        thread waits with the GIL released and the loop runs meanwhile. The checker is let
        go here, after ``checker_idle_s`` without a program, since only this thread uses it.
        Children it starts outlive it not: it lives as long as the worker."""
        while True:
            idle = self.host.end_checks(self.checker_idle_s, wait=False)
            try:
                item = self._to_check.get(timeout=idle or self.checker_idle_s)
            except queue.Empty:
                continue
            if item is None:
                return
            try:
                self._check_done.send(self._check(*item))
            except OSError:
                return  # the loop is gone

    def _check(self, command: Load, name: str) -> Load | LoadFailed:
        path = Path(command.path)
        try:
            facts, check_s = self.host.checked(path)
            if self.seed is None and not self._mapped() and len(self.lanes) < self.layout.lanes:
                # Before the first lane (or one to replace a lane its watchdog ended): no
                # lane is forked while it loads, since this outcome places nothing yet.
                self._seed(path)
        except Exception as err:  # EngineError, or anything the runtime raised
            return LoadFailed(name, command.path, one_line(err))
        return Load(command.path, name, (facts, check_s))

    def _mapped(self) -> bool:
        """Whether the foundation's packed weights are in a file (``packed.py``): each lane
        then maps it, the pages shared by all, and no seed is needed here."""
        return self.host.packed is not None and self.host.packed.path is not None

    def _seed(self, path: Path) -> None:
        """Pack the foundation here, before a lane is forked, by loading one program."""
        self.host.load(path, SEED)
        self.seed = self.host.sessions.pop(SEED)
        info = self.host.infos.pop(SEED)
        foundation = str(self.host.foundation.path)
        self.packed = FoundationPacked(foundation, os.getpid(), info.ranges)

    # --- lanes ---------------------------------------------------------------------------

    def _lane_for_new(self) -> Lane:
        idle = [lane for lane in self.lanes if not lane.adapters]
        if idle:
            return idle[0]
        # A lane forked with neither the seed nor the packed file would pack it on its own.
        mapped_or_seeded = self.seed is not None or self._mapped() or not self.lanes
        if len(self.lanes) < self.layout.lanes and mapped_or_seeded:
            return self._fork_lane()
        return min(self.lanes, key=lambda lane: len(lane.adapters))

    def _fork_lane(self) -> Lane:
        router = os.getpid()
        ours, theirs = mp.Pipe()
        # What the worker holds now is the lanes' too, copy-on-write: a collection in a lane
        # would write to every object (its gc header) and so copy the page it sits on.
        gc.freeze()
        pid = os.fork()  # from the loop's thread, which lasts as long as the worker
        if pid == 0:  # the lane
            code = 1
            try:
                die_with_parent(router)  # even when stuck in native code
                signal.signal(STUCK, signal.SIG_DFL)  # the watchdog's alarm ends the lane
                # Only the router talks to the UI, to the checks thread and to other lanes.
                others = (lane.conn for lane in self.lanes)
                for conn in (ours, self.app, self._checked, self._check_done, *others):
                    conn.close()
                self.host.in_lane(router, self.layout.pool)
                self.host.hold_until_loaded(self.seed)  # until its own load holds the packing
                self.seed = None
                self.lane_loop(theirs, self.host, self.step_limit_s)
                code = 0
            except BaseException:
                traceback.print_exc()  # to the engine's log: descriptor 2 points there
            finally:
                os._exit(code)
        theirs.close()
        lane = Lane(pid, ours, self.layout.pool)  # a new pool uses all its threads
        self.lanes.append(lane)
        if len(self.lanes) >= self.layout.lanes:
            self._let_seed_go()
        return lane

    def _let_seed_go(self) -> None:
        """Every lane is forked, and each holds the packed foundation (each lets its copy
        of the seed go after its own first load): the seed's KV cache and buffers, which
        no process ever runs, go here too. A lane that replaces one its watchdog ended is
        seeded again first (``_check``)."""
        if self.seed is not None:
            self.seed = None  # no collection: it would write to every object the lanes share
            trim()

    # --- from a lane ---------------------------------------------------------------------

    def forward(self, lane: Lane) -> None:
        try:
            received: list[EngineEvent | Probed] = lane.conn.recv()
        except (EOFError, OSError):
            self._lane_ended(lane)
            return
        events = [e for e in received if not isinstance(e, Probed | Replied | Idle)]
        for idle in (e for e in received if isinstance(e, Idle)):
            lane.seen = max(lane.seen, idle.seen)
            self._share_threads()  # before the UI hears of the reply's end and sends again
        for probe in (e for e in received if isinstance(e, Probed)):
            if probe.base and self.base is None:
                self.base = probe.adapter
            self.no_effect.probed(probe)
            events += self.no_effect.compare(self.base)
        for replied in (e for e in received if isinstance(e, Replied)):
            self._score(replied)
        for event in events:
            if isinstance(event, Piece) and event.adapter in lane.replies:
                lane.replies[event.adapter].append(event.text)
            elif isinstance(event, ReplyDone):
                lane.replies.pop(event.adapter, None)
            elif isinstance(event, LoadFailed):
                lane.adapters.pop(event.adapter, None)
                self._forget(event.adapter)
        if events:  # a batch that was only for the router (an Idle) is not sent on
            self.app.send(events)

    def _score(self, replied: Replied) -> None:
        """Have the base's lane score an adapter's whole reply (``Departure``)."""
        base = self.base
        if base is None or replied.adapter == base or (lane := self.owners.get(base)) is None:
            return
        self._give_work(lane, Score(base, replied))

    def _give_work(self, lane: Lane, command: Send | Score) -> None:
        """Tell a lane a Send or a Score: it is busy until it says it is Idle after it, so the
        busy lanes' shares of the cores are told first (its own among them)."""
        lane.told += 1
        self._share_threads()
        _tell(lane, command)

    def _share_threads(self) -> None:
        """Tell each busy lane whose share of the cores changed how many threads to use. An
        idle lane keeps its count until it is given work again."""
        busy = [lane for lane in self.lanes if lane.busy]
        for lane, threads in zip(busy, self.layout.shares(len(busy)), strict=True):
            if self.layout.resizing and lane.threads != threads:
                lane.threads = threads
                _tell(lane, UseThreads(threads))

    def _forget(self, name: str) -> None:
        """``name`` is gone: its probe goes, and it is no longer the base."""
        self.no_effect.forget(name)
        if self.base == name:
            self.base = None

    def _lane_ended(self, lane: Lane) -> None:
        self.lanes.remove(lane)
        lane.conn.close()
        code = _reap(lane.pid)
        if code != -STUCK:
            self.app.send([EngineFailed(f"engine lane exited ({_describe(code)})")])
            raise EOFError  # one lane's programs are gone: restart the engine
        for name in lane.adapters:
            self.no_effect.forget(name)
        self._share_threads()  # its cores go to the lanes still working
        self.app.send(self._stopped(lane))

    def _stopped(self, lane: Lane) -> list[EngineEvent]:
        """A lane's watchdog ended it: its replies end with an error, keeping what streamed,
        and its adapters are unloaded (a pane loads its own again if the user asks).
        Restarting the engine instead would cut every other pane's reply and load the stuck
        program again."""
        overran = f"did not finish a step within {self.step_limit_s:.0f} s"
        events: list[EngineEvent] = [
            ReplyDone(name, "".join(text), ReplyEnd.ERROR, None, f"{overran}; it was stopped")
            for name, text in lane.replies.items()
        ]
        events += [
            LoadFailed(name, path, f"{path}: unloaded: a reply in its process {overran}")
            for name, path in lane.adapters.items()
        ]
        return events


Routed = Cancel | Clear  # commands for some adapters (names) or for all (None)


def _tell(lane: Lane, command: object) -> None:
    """Send a lane a command. It reads them between steps, so this waits at most a step (a
    stuck one: until its watchdog ends it). A lane that has died is noticed where its
    connection is read, not here."""
    try:
        lane.conn.send(command)
    except OSError:
        pass


def _reap(pid: int, timeout_s: float = 5.0) -> int | None:
    """Wait for a lane to end (killing it after ``timeout_s``): its exit code, negative for
    the signal that ended it (None: reaped already)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.02)


def _describe(code: int | None) -> str:
    if code is None:
        return "already reaped"
    return f"signal {-code}" if code < 0 else str(code)
