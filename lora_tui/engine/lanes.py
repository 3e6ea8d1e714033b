"""Lanes: adapter programs answering at the same time, one process per core, over one packed
foundation.

``forward`` holds the GIL, so two programs run at once only in two processes. But XNNPACK's
weight cache lives in one process's memory: a process started afresh packs the foundation
again (540 MiB at fp32 for SmolLM2-135M). So the worker packs it once, by loading the first
program itself (the seed, never run), and then forks its lanes: each lane starts with the
packed foundation as pages it shares copy-on-write with the worker and every other lane,
and packs only its own adapters' weights. The kernel keeps those pages shared because
nothing writes to packed weights.

The worker becomes the lanes' router: it checks every program first (the pre-flight), gives
each to the lane with the fewest, and forwards commands to the lanes that own the adapters
they name and events back to the UI. A lane is the old worker loop (``serve`` on a
``ModelHost``) with its own thread pool, sized by ``lane_layout``: every core for a lone
lane, a share each for several, so lanes never spin more threads than there are cores.
A lane that dies ends the worker, and the UI restarts the engine as it does for any crash.

The worker's own pool has one thread while it seeds, because a pool with worker threads
cannot be torn down in a forked child (its threads did not come along); a pool of one has
none, and each lane replaces it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path

from lora_tui.engine.host import ModelHost
from lora_tui.engine.protocol import (
    Cancel,
    Clear,
    EngineEvent,
    EngineFailed,
    Load,
    LoadFailed,
    Send,
    Shutdown,
    Unload,
)
from lora_tui.engine.session import AdapterSession
from lora_tui.engine.types import EngineError
from lora_tui.format import one_line

SEED = "\0seed"  # not a name a user can give: it never shows up as an adapter

# A lane's loop: serve commands from the connection with the host, until it closes.
LaneLoop = Callable[[Connection, ModelHost], None]


@dataclass
class Lane:
    pid: int
    conn: Connection
    names: set[str] = field(default_factory=set)


class Router:
    """The worker's side: checks programs, forks lanes, routes commands and events."""

    def __init__(
        self,
        app: Connection,
        host: ModelHost,
        lane_loop: LaneLoop,
        lane_threads: int,
        max_lanes: int,
        checker_idle_s: float,
    ) -> None:
        self.app = app
        self.host = host
        self.lane_loop = lane_loop
        self.lane_threads = lane_threads
        self.max_lanes = max(1, max_lanes)
        self.checker_idle_s = checker_idle_s
        self.lanes: list[Lane] = []
        self.seed: AdapterSession | None = None  # held so its packed weights stay cached

    @property
    def owners(self) -> dict[str, Lane]:
        return {name: lane for lane in self.lanes for name in lane.names}

    def serve(self) -> None:
        """Until the UI says to stop or goes away, or a lane dies."""
        try:
            while True:
                # Replies stream while the checker goes: do not wait for it.
                idle = self.host.end_checks(self.checker_idle_s, wait=False)
                for conn in wait([self.app, *(lane.conn for lane in self.lanes)], idle):
                    if conn is self.app:
                        command = self.app.recv()
                        if isinstance(command, Shutdown):
                            return
                        self.route(command)
                    else:
                        self.forward(self._lane_of(conn))
        except (EOFError, OSError):
            return  # the UI is gone
        finally:
            self.close()

    def close(self) -> None:
        """End the lanes: each stops when its connection closes; reap them."""
        for lane in self.lanes:
            lane.conn.close()
        for lane in self.lanes:
            _reap(lane.pid)
        self.lanes.clear()

    # --- from the UI ---------------------------------------------------------------------

    def route(self, command: object) -> None:
        if isinstance(command, Load):
            self.load(command)
        elif isinstance(command, Unload):
            lane = self.owners.get(command.name)
            if lane is not None:
                lane.names.discard(command.name)
                lane.conn.send(command)
        elif isinstance(command, Send):
            if (lane := self.owners.get(command.adapter)) is not None:
                lane.conn.send(command)
        elif isinstance(command, Routed):
            for lane, names in self._split(command.names):
                lane.conn.send(replace(command, names=names))

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

    def load(self, command: Load) -> None:
        path = Path(command.path)
        name = command.name or path.stem
        try:
            facts, check_s = self.host.checked(path)
            name = command.name or self.host.foundation.entry_for(path)[0]
            if name in self.owners or name == SEED:
                raise EngineError(f"{path}: an adapter named '{name}' is already loaded")
            if self.seed is None:
                self._seed(path)
            lane = self._lane_for_new()
        except Exception as err:  # EngineError, or anything the runtime raised
            self.app.send([LoadFailed(name, command.path, one_line(err))])
            return
        lane.names.add(name)
        lane.conn.send(Load(command.path, name, (facts, check_s)))

    def _seed(self, path: Path) -> None:
        """Pack the foundation here, before any lane is forked, by loading one program."""
        self.host.load(path, SEED)
        self.seed = self.host.sessions.pop(SEED)
        self.host.infos.pop(SEED)

    def _lane_for_new(self) -> Lane:
        idle = [lane for lane in self.lanes if not lane.names]
        if idle:
            return idle[0]
        if len(self.lanes) < self.max_lanes:
            return self._fork_lane()
        return min(self.lanes, key=lambda lane: len(lane.names))

    def _fork_lane(self) -> Lane:
        ours, theirs = mp.Pipe()
        pid = os.fork()
        if pid == 0:  # the lane
            code = 1
            try:
                for conn in (ours, self.app, *(lane.conn for lane in self.lanes)):
                    conn.close()  # only the router talks to the UI and to the other lanes
                self.host.in_lane(os.getppid(), self.lane_threads)
                self.lane_loop(theirs, self.host)
                code = 0
            except BaseException:
                traceback.print_exc()  # to the engine's log: descriptor 2 points there
            finally:
                os._exit(code)
        theirs.close()
        lane = Lane(pid, ours)
        self.lanes.append(lane)
        return lane

    # --- from a lane ---------------------------------------------------------------------

    def forward(self, lane: Lane) -> None:
        try:
            events: list[EngineEvent] = lane.conn.recv()
        except (EOFError, OSError):
            self.lanes.remove(lane)
            self.app.send([EngineFailed(f"engine lane exited ({_reap(lane.pid)})")])
            raise EOFError from None  # one lane's programs are gone: restart the engine
        for event in events:
            if isinstance(event, LoadFailed):
                lane.names.discard(event.adapter)
        self.app.send(events)

    def _lane_of(self, conn: object) -> Lane:
        return next(lane for lane in self.lanes if lane.conn is conn)


Routed = Cancel | Clear  # commands for some adapters (names) or for all (None)


def _reap(pid: int, timeout_s: float = 5.0) -> int | str:
    """Wait for a lane to end (killing it after ``timeout_s``): its exit code, or the signal
    that ended it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "already reaped"
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.02)
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return os.waitstatus_to_exitcode(status)
