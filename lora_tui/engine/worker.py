"""EngineProcess: adapter programs in a worker process, for a UI that must never wait on the GIL.

``forward`` in the pybindings holds the GIL for a whole call (tens of ms per token, far
more per prefill chunk), so the models live in other processes: the worker checks programs
and packs the foundation once, and its lanes (``lanes.py``), forked from it one per core,
run the programs, so panes answer at the same time. Everything native code prints goes to
the log file there, never to the UI's terminal.

The UI never waits on the worker: commands go out through a writer thread, events come in
on a reader thread. Each process of the engine dies with the one that started it
(``lora_tui/common/lifetime.py``), so none outlives an app that is killed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from lora_tui.common.lifetime import die_with_parent
from lora_tui.common.native_output import redirect_native_output, start_quietly
from lora_tui.common.safe_path import safe_path_for_children
from lora_tui.engine.foundations import FoundationPrograms, foundations_factory
from lora_tui.engine.lanes import Router, step_watch
from lora_tui.engine.memory import MemorySample, sample_tree
from lora_tui.engine.protocol import (
    Cancel,
    Clear,
    EngineEvent,
    EngineFactory,
    EngineFailed,
    EngineReady,
    FoundationEngine,
    Idle,
    Load,
    Loaded,
    LoadFailed,
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
from lora_tui.engine.threads import (
    available_cores,
    hold_openmp_to_one_thread,
    lane_layout,
    pool_binding,
)
from lora_tui.engine.types import EngineError, GenerationSettings, Message, ReplyEnd
from lora_tui.format import ArtifactError, one_line

if TYPE_CHECKING:
    from lora_tui.engine.host import ModelHost

WORKER_NICENESS = 10
CHECKER_IDLE_S = 15.0


class EventCollector:
    """Every event an engine sends, for a script, a benchmark or a test: pass it as the
    engine's ``on_event`` and wait for the events you need."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: EngineEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(
        self, done: Callable[[list[EngineEvent]], bool], timeout: float = 120.0
    ) -> list[EngineEvent]:
        """The events so far, once ``done`` holds for them; a ``TimeoutError`` naming the
        last few if it does not within ``timeout`` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: done(self.events), timeout):
                raise TimeoutError(f"timed out after {timeout} s; last events {self.events[-3:]}")
            return list(self.events)


class CommandWriter:
    """Sends commands on a connection from a thread of its own, in the order given. Each
    prompt carries its whole conversation (megabytes for a long one) and a pipe holds far
    less until the other end reads, which a busy worker does when it can: the caller (the
    UI thread) must never wait for that."""

    def __init__(self, conn: Connection) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._write, args=(conn,), daemon=True, name="engine-commands"
        )
        self._thread.start()

    def send(self, command: object) -> None:
        self._queue.put(command)

    def _write(self, conn: Connection) -> None:
        while True:
            command = self._queue.get()
            try:
                conn.send(command)
            except OSError:
                return  # the worker is gone: the reader thread reports it
            if isinstance(command, Shutdown):
                return


class EngineProcess:
    """Client side: send commands; events arrive on a reader thread via ``on_event``."""

    def __init__(
        self,
        weights: Path,
        on_event: Callable[[EngineEvent], None],
        tokenizer: Path | None = None,
        share: bool = True,
        log_path: Path | None = None,
        threads: int | None = None,
        panes: int = 1,
        cores: int | None = None,
        programs: Sequence[Path] = (),
    ) -> None:
        """``panes``: how many programs the app opens with, which sets how many run at once
        (``lane_layout``); ``threads``: a fixed XNNPACK pool in each lane (default: every
        core, of which each lane uses its share while others answer); ``cores``: how many
        cores its lanes share (default: all; less when other engines run beside it);
        ``programs``: those it will be asked to load first, if known (the worker starts
        the pre-flight checker at once unless each passed before)."""
        context = mp.get_context("spawn")  # never fork a process that may hold torch threads
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_worker_main,
            args=(
                child,
                str(weights),
                str(tokenizer) if tokenizer else None,
                share,
                str(log_path) if log_path else os.devnull,
                threads,
                panes,
                cores,
                os.getpid(),
                [str(program) for program in programs],
            ),
            daemon=True,
            name="lora-tui-engine",
        )
        self._on_event = on_event
        with safe_path_for_children():
            start_quietly(self._process)
        child.close()
        self._writer = CommandWriter(self._conn)
        self._reader = threading.Thread(target=self._read, daemon=True, name="engine-events")
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def memory(self) -> MemorySample | None:
        """The engine's memory: the worker, its lanes (where the programs live) and its
        pre-flight child, summed."""
        try:
            return sample_tree(self._process.pid)
        except (psutil.Error, OSError, ValueError):
            return None

    def _read(self) -> None:
        while True:
            try:
                batch = self._conn.recv()
            except (EOFError, OSError):
                self._process.join(1)  # reap it, so a crash has an exit code to report
                if self._process.exitcode not in (0, None):
                    self._on_event(
                        EngineFailed(f"engine process exited ({self._process.exitcode})")
                    )
                return
            for event in batch:
                self._on_event(event)

    def load(self, path: Path, name: str | None = None) -> None:
        self._writer.send(Load(str(path), name))

    def unload(self, name: str) -> None:
        self._writer.send(Unload(name))

    def send(
        self, conversations: Mapping[str, Sequence[Message]], settings: GenerationSettings
    ) -> None:
        for name, messages in conversations.items():
            self._writer.send(Send(name, tuple(messages), settings))

    def cancel(self, names: list[str] | None = None) -> None:
        self._writer.send(Cancel(tuple(names) if names is not None else None))

    def clear(self, names: list[str] | None = None) -> None:
        self._writer.send(Clear(tuple(names) if names is not None else None))

    def use_base(self, name: str) -> None:
        self._writer.send(UseBase(name))

    def close(self, timeout: float = 5.0) -> None:
        self._writer.send(Shutdown())
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(1)


def _worker_main(
    conn: Connection,
    weights: str,
    tokenizer: str | None,
    share: bool,
    log_path: str,
    threads: int | None,
    panes: int,
    cores: int | None,
    parent: int,
    programs: list[str],
) -> None:
    die_with_parent(parent)  # even when stuck in native code, as a check or a load may be
    hold_openmp_to_one_thread()  # before the host imports torch
    redirect_native_output(log_path)
    warnings.simplefilter("ignore")
    # The models use every core; yield them to the UI whenever it has something to draw.
    os.nice(WORKER_NICENESS)
    from lora_tui.engine.preflight import Preflight, has_record

    # The pre-flight checker imports the runtime beside this process doing the same, instead
    # of after it: the first program is checked that much sooner. Unless every program
    # passed before: then it is not needed at all, and would only take a core.
    checker = Preflight(Path(log_path))
    if not programs or not all(has_record(Path(p), Path(weights)) for p in programs):
        checker.launch()
    from lora_tui.engine.host import ModelHost

    try:
        if threads is not None and threads < 1:
            raise EngineError(f"threads must be at least 1, not {threads}")
        # One thread here: the lanes forked from this process size their own pools.
        host = ModelHost(
            Path(weights),
            Path(tokenizer) if tokenizer else None,
            share=share,
            log_path=Path(log_path),
            threads=1,
            preflight=checker,
        )
    except ArtifactError as err:
        checker.close()
        conn.send([EngineFailed(str(err))])
        return
    foundation_mib = host.foundation.size_bytes / 2**20
    layout = lane_layout(panes, threads, cores, resizable=pool_binding() is not None)
    if layout.note:
        print(f"lanes: {layout.note}", file=sys.stderr)  # to the engine's log
    ready = EngineReady(host.sharing, host.baseline_rss_mib, weights, foundation_mib, layout.note)
    conn.send([ready])
    router = Router(conn, host, _lane_main, layout, CHECKER_IDLE_S)
    try:
        router.serve()
    finally:
        host.end_checks()


def _lane_main(conn: Connection, host: ModelHost, step_limit_s: float) -> None:
    try:
        _serve(conn, host, step_limit_s)
    except (EOFError, OSError):
        pass  # the router is gone (its end of the pipe closed): so is this lane


def _serve(conn: Connection, host: ModelHost, step_limit_s: float) -> None:
    work = _Work()
    while True:
        # Block until a command unless a reply is under way (or until a chore is due: an
        # idle scorer to let go); take every command waiting, then one step of the next
        # reply. A load (it runs a forward) or a step that takes longer than
        # ``step_limit_s`` ends the lane: it is stuck, see ``step_watch``.
        # A new thread count (``UseThreads``) is a command: it takes effect between steps.
        wait = 0 if host.busy else host.idle_chore_s()
        while conn.poll(wait):
            command = conn.recv()
            if isinstance(command, Shutdown):
                return
            with step_watch(step_limit_s):
                reply = _handle(host, command)
            if isinstance(command, Send | Score):
                work.seen += 1
                work.owed = True
            if reply := reply + work.idle(host):
                conn.send(reply)
            wait = 0
        with step_watch(step_limit_s):
            events = host.step()
        if events := events + work.idle(host):
            conn.send(events)


class _Work:
    """What a lane tells its router of its work: after the Sends and Scores it has seen, it
    is Idle (once, sent with the events of what made it so)."""

    def __init__(self) -> None:
        self.seen = 0
        self.owed = False

    def idle(self, host: ModelHost) -> list[Idle]:
        if not self.owed or host.busy:
            return []
        self.owed = False
        return [Idle(self.seen)]


def _handle(host: ModelHost, command: object) -> list[EngineEvent | Probed | Replied]:
    """Carry out one command. Whatever goes wrong becomes an event for the adapters it
    concerns; nothing ends the worker."""
    if isinstance(command, Load):
        path = Path(command.path)
        name = command.name or path.stem
        try:
            if command.checked is not None:
                host.accept_check(path, *command.checked)
            info = host.load(path, command.name)
            return [Loaded(info.name, info), *host.probed(info.name)]
        except Exception as err:  # EngineError, or anything the runtime raised
            return [LoadFailed(name, command.path, one_line(err))]
    if isinstance(command, UseThreads):
        host.use_threads(command.threads)
        return []
    if isinstance(command, Score):
        try:
            host.score(command.base, command.replied)
        except Exception as err:  # the scorer did not load: the reply goes unscored
            print(f"scoring under {command.base}: {one_line(err)}", file=sys.stderr)
        return []
    names = (command.adapter,) if isinstance(command, Send) else getattr(command, "names", None)
    try:
        if isinstance(command, Unload):
            return host.unload(command.name)
        if isinstance(command, Send):
            host.start(command.adapter, command.messages, command.settings)
        elif isinstance(command, Cancel):
            host.cancel(list(names) if names is not None else None)
        elif isinstance(command, Clear):
            return host.clear(list(names) if names is not None else None)
    except Exception as err:
        affected = list(names) if names is not None else list(host.sessions)
        return [ReplyDone(n, "", ReplyEnd.ERROR, None, one_line(err)) for n in affected]
    return []


def foundations_engine_factory(
    foundations: Sequence[FoundationPrograms],
    tokenizer: Path | None,
    share: bool,
    log_path: Path | None,
    threads: int | None = None,
) -> EngineFactory:
    """The app's engines: one process per foundation, each laying its lanes over its share
    of the cores (one foundation: one engine over them all)."""

    def start_one(
        group: FoundationPrograms, cores: int, on_event: Callable[[EngineEvent], None]
    ) -> FoundationEngine:
        panes = len(group.programs)
        return EngineProcess(
            group.weights,
            on_event,
            tokenizer,
            share,
            log_path,
            threads,
            panes,
            cores,
            group.programs,
        )

    return foundations_factory(foundations, start_one, available_cores())
