"""Pre-flight: try each program in a short-lived child process before the shared one loads it.

A program runs native code on bytes from disk, and XNNPACK's weight cache makes one process
hold every adapter, so a bad file (another foundation's program, a damaged download, a
.pte that is not an LLM program) must fail somewhere it can take nothing else down. The
child loads the program with verification on, reads its method meta and constant methods,
and runs one forward on one token. A program that fails, hangs or crashes the child is
refused in one line; the child is started again for the next program.

The child turns the weight cache on too, so checking several programs packs the foundation
once. ``close()`` ends it when there is nothing more to check.

Run as ``python -P -m lora_tui.engine.preflight PARENT LOG FD``: a fresh interpreter, so a
crash takes nothing with it and the process is known by its command line; ``-P``, so it
imports nothing from the working folder (it keeps that folder: the programs' paths may be
relative to it). It takes ``Check`` requests and answers ``Checked`` over a
``multiprocessing`` connection on descriptor FD, as the engine's other processes do;
everything native code prints goes to LOG. It dies with PARENT, the process that started
it, even when stuck in native code.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from lora_tui.common.lifetime import die_with_parent, start_child
from lora_tui.common.native_output import redirect_native_output
from lora_tui.common.safe_path import SAFE_PATH_FLAG
from lora_tui.engine.pages import trim
from lora_tui.engine.protocol import Check, Checked, CheckerReady
from lora_tui.engine.types import EngineError
from lora_tui.format import ArtifactError

if TYPE_CHECKING:  # program.py imports torch: this module must not, see Preflight.launch
    from lora_tui.engine.loading import ProgramFacts

CHECKER_MODULE = "lora_tui.engine.preflight"  # how the child is run, and recognised
START_TIMEOUT_S = 120.0  # importing torch and ExecuTorch on a busy machine
CHECK_TIMEOUT_S = 120.0  # loading, packing and one forward of one program
END_TIMEOUT_S = 10.0  # for a closed child to end before it is killed


class Preflight:
    def __init__(self, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self.command = [sys.executable, SAFE_PATH_FLAG, "-m", CHECKER_MODULE]  # the child
        self._child: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None  # to the child
        self._ending: list[tuple[subprocess.Popen[bytes], float]] = []  # closed, not yet gone
        self._last_check = 0.0
        self._waiting_ready = False  # launched, and its CheckerReady not read yet

    @property
    def idle_s(self) -> float | None:
        """How long the child has waited for a program; None when there is no child."""
        self._reap()
        return time.monotonic() - self._last_check if self._child is not None else None

    def check(self, pte: Path, ptd: Path) -> ProgramFacts:
        """The program's facts, or an ``EngineError`` saying in one line why it is refused."""
        self._last_check = time.monotonic()
        conn = self._started(pte)
        try:
            conn.send(Check(pte, ptd))
        except OSError:
            pass  # it died; reading its answer says how
        answer = self._answer(CHECK_TIMEOUT_S, pte)
        self._last_check = time.monotonic()
        if not isinstance(answer, Checked) or answer.facts is None:
            raise EngineError(getattr(answer, "error", None) or f"{pte}: no answer from the check")
        return answer.facts

    def close(self, wait: bool = True) -> None:
        """End the child. Tearing its runtime down takes seconds (2.5 s measured for the
        fp32 demo): ``wait=False`` leaves it ending on its own, so replies running beside
        it need not wait; it is collected later."""
        child, conn = self._child, self._conn
        self._child = self._conn = None
        self._waiting_ready = False
        if conn is not None:
            conn.close()  # the child ends when its connection does
        if child is not None:
            self._ending.append((child, time.monotonic() + END_TIMEOUT_S))
        if wait:
            for ending, deadline in self._ending:
                try:
                    ending.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    ending.kill()
                    ending.wait()
        self._reap()

    def _reap(self) -> None:
        """Collect children that have ended; kill one that outstays its time."""
        still = []
        for child, deadline in self._ending:
            if child.poll() is None:
                if time.monotonic() > deadline:
                    child.kill()
                still.append((child, deadline))
        self._ending = still

    def forget(self) -> None:
        """In a process forked from this one's owner: drop our copy of the connection
        without ending the child (it is still the owner's)."""
        self._drop()
        self._ending = []

    def launch(self) -> None:
        """Start the child now, without waiting for it: it imports the runtime (about 8 s
        here) while the caller does its own work, and the first check waits for it. The
        engine's worker calls this before it imports the runtime itself."""
        if self._child is not None and self._child.poll() is None:
            return
        log = str(self.log_path) if self.log_path else os.devnull
        ours, theirs = socket.socketpair()
        with ours, theirs:
            command = [*self.command, str(os.getpid()), log, str(theirs.fileno())]
            self._child = start_child(
                lambda: subprocess.Popen(
                    command,
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            self._conn = Connection(ours.detach())
        self._waiting_ready = True
        self._last_check = time.monotonic()  # idle from now, not since long ago

    def _started(self, pte: Path) -> Connection:
        if self._child is None or self._conn is None or self._child.poll() is not None:
            self.launch()
        if self._waiting_ready:
            self._answer(START_TIMEOUT_S, pte)  # CheckerReady once it has imported the runtime
            self._waiting_ready = False
        assert self._conn is not None
        return self._conn

    def _answer(self, timeout: float, pte: Path) -> object:
        child, conn = self._child, self._conn
        assert child is not None and conn is not None
        if conn.poll(timeout):
            try:
                return conn.recv()
            except (EOFError, OSError):
                pass  # it died before answering
            code = child.wait()
            self._drop()
            raise EngineError(f"{pte}: crashed the program check ({_describe_exit(code)})")
        child.kill()
        child.wait()
        self._drop()
        raise EngineError(f"{pte}: did not load within {timeout:.0f} s (checked apart)")

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._child = self._conn = None
        self._waiting_ready = False


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def inspect(pte: Path, ptd: Path) -> ProgramFacts:
    """Load ``pte`` over ``ptd`` and run one token through it (in the child)."""
    from lora_tui.engine.loading import ProgramFacts, load_module, warm_up
    from lora_tui.format import check_program_file

    check_program_file(pte)
    module = load_module(pte, ptd)
    facts = ProgramFacts.of(module, pte)
    logits = warm_up(module, pte, ptd)
    if logits.shape[-1] != facts.vocab_size:
        raise EngineError(f"{pte}: returned {logits.shape[-1]} logits, not {facts.vocab_size}")
    return facts


def _child_main(parent: int, log: str, fd: int) -> None:
    die_with_parent(parent)
    conn = Connection(fd)
    # Native code writes to descriptors 1 and 2: they go to the log.
    redirect_native_output(log)
    import warnings

    warnings.simplefilter("ignore")
    from lora_tui.engine.sharing import configure_sharing

    configure_sharing(True)
    conn.send(CheckerReady())
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the engine is done checking
            return
        started = time.perf_counter()
        try:
            facts, error = inspect(request.pte, request.ptd), None
        except ArtifactError as err:
            facts, error = None, str(err)
        except Exception as err:  # anything else the runtime raises is this program's fault
            facts, error = None, f"{request.pte}: {type(err).__name__}: {err}"
        conn.send(Checked(facts, error, time.perf_counter() - started))
        # The program is gone, and with it the packed weights only it held: hand back what
        # malloc kept of them (a checker idle between checks held 830 MiB of freed heap).
        gc.collect()
        trim()


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
