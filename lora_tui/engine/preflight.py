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

import dataclasses
import gc
import hashlib
import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from lora_tui.common.files import private_folder, write_text_atomic
from lora_tui.common.lifetime import die_with_parent, start_child
from lora_tui.common.native_output import redirect_native_output
from lora_tui.common.safe_path import SAFE_PATH_FLAG
from lora_tui.engine.pages import trim
from lora_tui.engine.paths import cache_dir
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

    def check(self, pte: Path, ptd: Path, packed: Path | None = None) -> ProgramFacts:
        """The program's facts, or an ``EngineError`` saying in one line why it is refused.
        ``packed``: the foundation's packed weights on disk, for the child to map. A program
        that passed before, its file and the foundation's unchanged since, on this runtime,
        is not checked again (``recorded``)."""
        facts = recorded(pte, ptd)
        if facts is not None:
            return facts
        facts = self._check(pte, ptd, packed)
        record(pte, ptd, facts)
        return facts

    def _check(self, pte: Path, ptd: Path, packed: Path | None) -> ProgramFacts:
        self._last_check = time.monotonic()
        conn = self._started(pte)
        try:
            conn.send(Check(pte, ptd, packed))
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


# --- checks that passed, kept across starts ----------------------------------------------
# The check costs a process that imports the runtime (seconds) on every start. A program
# that passed once passes again while its bytes, the foundation's and the runtime are the
# same: a record says so, keyed by both files' size, inode and times (any write changes
# the change time) and the runtime's versions. Only passes are recorded, as data: the
# facts, read back as plain numbers.

RECORD_VERSION = 2  # 2: max_prefill is the tokens input's bound (127), not get_max_seq_len


def records_folder() -> Path:
    return cache_dir() / "checked"


def recorded(pte: Path, ptd: Path) -> ProgramFacts | None:
    """The facts of an earlier pass of this very program over this very foundation."""
    from lora_tui.engine.loading import ProgramFacts

    try:
        path = _record_path(pte, ptd)
        if private_folder(path.parent) is not None:
            return None
        value = json.loads(path.read_text())
        eos_ids = tuple(_whole(i) for i in value["eos_ids"])
        return ProgramFacts(
            max_context=_whole(value["max_context"]),
            max_prefill=_whole(value["max_prefill"]),
            vocab_size=_whole(value["vocab_size"]),
            bos_id=None if value["bos_id"] is None else _whole(value["bos_id"]),
            eos_ids=eos_ids,
            foundation_id=None
            if value["foundation_id"] is None
            else _whole(value["foundation_id"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def has_record(pte: Path, ptd: Path) -> bool:
    """Whether an earlier pass is on record (read without importing the runtime: the
    worker asks before it starts the checker)."""
    try:
        return _record_path(pte, ptd).is_file()
    except OSError:
        return False


def record(pte: Path, ptd: Path, facts: ProgramFacts) -> None:
    """Keep a pass; a record that cannot be written only means checking again next time."""
    try:
        path = _record_path(pte, ptd)
        if private_folder(path.parent) is None:
            _forget_gone(path.parent)
            kept = {**dataclasses.asdict(facts), "program": str(pte.resolve())}
            write_text_atomic(path, json.dumps(kept))
    except OSError:
        pass


def _forget_gone(folder: Path) -> None:
    """Delete the records of programs that no longer exist (a test's, a deleted export's),
    so the folder does not grow without end."""
    for kept in folder.glob("*.json"):
        try:
            program = json.loads(kept.read_text()).get("program")
            if isinstance(program, str) and not Path(program).exists():
                kept.unlink()
        except (OSError, ValueError, AttributeError):
            kept.unlink(missing_ok=True)


def _record_path(pte: Path, ptd: Path) -> Path:
    def identity(path: Path) -> list[object]:
        found = path.stat()
        return [
            str(path.resolve()),
            found.st_size,
            found.st_ino,
            found.st_mtime_ns,
            found.st_ctime_ns,
        ]

    versions = [importlib.metadata.version(p) for p in ("executorch", "torch", "lora-tui")]
    key = json.dumps([RECORD_VERSION, identity(pte), identity(ptd), versions])
    return records_folder() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _whole(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError(f"not a count: {value!r}")
    return value


def _whole_or_none(value: object) -> int | None:
    return None if value is None else _whole(value)


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
    from lora_tui.engine.packed import adopt
    from lora_tui.engine.sharing import configure_sharing

    configure_sharing(True)
    conn.send(CheckerReady())
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the engine is done checking
            return
        started = time.perf_counter()
        if request.packed is not None:
            adopt(request.packed)  # before its first load; a later one changes nothing
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
