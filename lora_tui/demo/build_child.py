"""A build the app shows while it runs, in a child process.

The app opens at once and stays small: the build (lowering peaks near 4 GB, and imports
torch and ExecuTorch) lives and dies in its own process, which reports its progress and, at
the end, the programs to open. Stopping it loses nothing: a build publishes whole
(``lora_tui/demo/build.py``), and the next start finds what it finished and goes on from there.

No Textual here, and no torch at import: the child imports what the build needs.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

from lora_tui.common.lifetime import die_with_parent
from lora_tui.common.native_output import redirect_native_output, start_quietly
from lora_tui.common.safe_path import safe_path_for_children
from lora_tui.format import one_line

BUILD_NICENESS = 5  # below the app, so typing stays smooth while it lowers


@dataclass(frozen=True)
class BuildProgress:
    phase: str  # "export template v4-r16-…", "fill nobel.pte"
    count: int  # steps reported so far: a lowering reports each of its four as it starts
    total: int
    step: str = ""  # the last step reported ("lowering to XNNPACK")


@dataclass(frozen=True)
class BuildReady:
    weights: Path
    programs: tuple[Path, ...]
    seconds: float
    built: bool  # False: what the cache held was current, and nothing was built


@dataclass(frozen=True)
class BuildFailed:
    error: str  # one line; the traceback, if any, is in the build's log


BuildEvent = BuildProgress | BuildReady | BuildFailed

# What runs in the child: reports progress through its argument, and returns the programs.
BuildJob = Callable[[Callable[[BuildProgress], None]], BuildReady]


class BuildClient(Protocol):
    def start(self, on_event: Callable[[BuildEvent], None]) -> None:
        """Start building; events arrive on another thread, ``BuildReady`` or
        ``BuildFailed`` last."""

    def stop(self) -> None:
        """Stop the build if it still runs (the next start resumes it)."""


class BuildProcess:
    """``job`` (a module-level function, so a spawned child can import it) in a child
    process, with what native code prints going to ``log_path``."""

    def __init__(self, job: BuildJob, log_path: Path) -> None:
        self.job, self.log_path = job, log_path
        self._process: mp.process.BaseProcess | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, on_event: Callable[[BuildEvent], None]) -> None:
        context = mp.get_context("spawn")  # a fresh interpreter: no Textual threads forked
        ours, theirs = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_child_main,
            args=(theirs, self.job, str(self.log_path), os.getpid()),
            daemon=True,
            name="lora-tui-build",
        )
        with safe_path_for_children():
            start_quietly(self._process)
        theirs.close()
        reader = threading.Thread(
            target=self._read, args=(ours, on_event), daemon=True, name="build-events"
        )
        reader.start()

    def _read(self, conn: Connection, on_event: Callable[[BuildEvent], None]) -> None:
        process = self._process
        assert process is not None
        while True:
            try:
                event: BuildEvent = conn.recv()
            except (EOFError, OSError):
                process.join(5)
                if not self._stopping:  # it ended without a word: it crashed or was killed
                    code = process.exitcode or 0
                    how = f"signal {-code}" if code < 0 else f"exit {code}"
                    on_event(BuildFailed(f"the build stopped ({how}); see {self.log_path}"))
                return
            if not isinstance(event, BuildProgress):
                process.join(5)  # reaped before the app hears: no zombie left in its tree
                on_event(event)
                return
            on_event(event)

    def stop(self, timeout: float = 5.0) -> None:
        process = self._process
        if process is None or not process.is_alive():
            return
        self._stopping = True
        process.terminate()
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(1)


def _child_main(conn: Connection, job: BuildJob, log_path: str, parent: int) -> None:
    # Killed with the app, however it ends; what the build starts (pip) is too, through
    # lifetime.dying_with_us.
    die_with_parent(parent)
    redirect_native_output(log_path)  # nothing may print over the app's screen
    warnings.simplefilter("ignore")
    with contextlib.suppress(OSError):
        os.nice(BUILD_NICENESS)
    try:
        event: BuildEvent = job(conn.send)
    except Exception as err:  # every failure reaches the app as one line
        traceback.print_exc()
        event = BuildFailed(f"{one_line(err)} (details in {log_path})")
    conn.send(event)
    conn.close()
    # Out at once: tearing down a 4 GB heap and torch's threads kept a finished build
    # alive for seconds beside the engine starting up.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class PhaseReporter:
    """The exporter's progress ``Events`` as ``BuildProgress`` sent to the app."""

    def __init__(self, send: Callable[[BuildProgress], None]) -> None:
        self.send = send
        self.current = BuildProgress("", 0, 1)

    def phase(self, name: str, total: int) -> None:
        self.current = BuildProgress(name, 0, total)
        self.send(self.current)

    def advance(self, detail: str) -> None:
        current = self.current
        self.current = BuildProgress(current.phase, current.count + 1, current.total, detail)
        self.send(self.current)

    def phase_done(self) -> None:
        current = self.current
        self.current = BuildProgress(current.phase, current.total, current.total)
        self.send(self.current)
