"""Pre-flight: try each program in a short-lived child process before the shared one loads it.

A program runs native code on bytes from disk, and XNNPACK's weight cache makes one process
hold every adapter, so a bad file (another foundation's program, a damaged download, a
.pte that is not an LLM program) must fail somewhere it can take nothing else down. The
child loads the program with verification on, reads its method meta and constant methods,
and runs one forward on one token. A program that fails, hangs or crashes the child is
refused in one line; the child is started again for the next program.

The child turns the weight cache on too, so checking several programs packs the foundation
once. ``close()`` ends it when there is nothing more to check.

Run as ``python -m lora_tui.engine.preflight LOG``: requests and answers are JSON lines on
its stdin and stdout; everything native code prints goes to LOG.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from lora_tui.common.native_output import redirect_native_output
from lora_tui.engine.program import ProgramFacts
from lora_tui.engine.types import EngineError
from lora_tui.format import ArtifactError

CHECKER_MODULE = "lora_tui.engine.preflight"  # how the child is run, and recognised
START_TIMEOUT_S = 120.0  # importing torch and ExecuTorch on a busy machine
CHECK_TIMEOUT_S = 120.0  # loading, packing and one forward of one program
END_TIMEOUT_S = 10.0  # for a closed child to end before it is killed


class Preflight:
    def __init__(self, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self.command = [sys.executable, "-m", CHECKER_MODULE]  # the child
        self._child: subprocess.Popen[bytes] | None = None
        self._ending: list[tuple[subprocess.Popen[bytes], float]] = []  # closed, not yet gone
        self._last_check = 0.0

    @property
    def idle_s(self) -> float | None:
        """How long the child has waited for a program; None when there is no child."""
        self._reap()
        return time.monotonic() - self._last_check if self._child is not None else None

    def check(self, pte: Path, ptd: Path) -> ProgramFacts:
        """The program's facts, or an ``EngineError`` saying in one line why it is refused."""
        self._last_check = time.monotonic()
        child = self._started(pte)
        request = json.dumps({"pte": str(pte), "ptd": str(ptd)}) + "\n"
        try:
            assert child.stdin is not None
            child.stdin.write(request.encode())
            child.stdin.flush()
        except OSError:
            pass  # it died; reading its answer says how
        answer = self._answer(child, CHECK_TIMEOUT_S, pte)
        self._last_check = time.monotonic()
        if "error" in answer:
            raise EngineError(answer["error"])
        return ProgramFacts(**{**answer["facts"], "eos_ids": tuple(answer["facts"]["eos_ids"])})

    def close(self, wait: bool = True) -> None:
        """End the child. Tearing its runtime down takes seconds (2.5 s measured for the
        fp32 demo): ``wait=False`` leaves it ending on its own, so replies running beside
        it need not wait; it is collected later."""
        child, self._child = self._child, None
        if child is not None:
            if child.stdin is not None:
                child.stdin.close()  # the child ends at the end of its input
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
        """In a process forked from this one's owner: drop our copies of the child's pipes
        without ending it (it is still the owner's)."""
        child, self._child = self._child, None
        self._ending = []
        if child is not None:
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()

    def _started(self, pte: Path) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is None:
            return self._child
        log = str(self.log_path) if self.log_path else os.devnull
        self._child = subprocess.Popen(
            [*self.command, log],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,  # unbuffered, so select() sees every answer line
        )
        self._answer(self._child, START_TIMEOUT_S, pte)  # {"ready": true} once imported
        return self._child

    def _answer(self, child: subprocess.Popen[bytes], timeout: float, pte: Path) -> dict:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], timeout)
        line = child.stdout.readline() if ready else b""
        if line:
            return json.loads(line)
        if not ready:
            child.kill()
            child.wait()
            self._child = None
            raise EngineError(f"{pte}: did not load within {timeout:.0f} s (checked apart)")
        code = child.wait()
        self._child = None
        raise EngineError(f"{pte}: crashed the program check ({_describe_exit(code)})")


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def inspect(pte: Path, ptd: Path) -> ProgramFacts:
    """Load ``pte`` over ``ptd`` and run one token through it (in the child)."""
    from lora_tui.engine.program import load_module, warm_up
    from lora_tui.format import check_program_file

    check_program_file(pte)
    module = load_module(pte, ptd)
    facts = ProgramFacts.of(module, pte)
    logits = warm_up(module, pte, ptd)
    if logits.shape[-1] != facts.vocab_size:
        raise EngineError(f"{pte}: returned {logits.shape[-1]} logits, not {facts.vocab_size}")
    return facts


def _child_main(log: str) -> None:
    answers: IO[str] = os.fdopen(os.dup(1), "w", buffering=1)
    # Native code writes to descriptors 1 and 2: they go to the log, not the protocol.
    redirect_native_output(log)
    import warnings

    warnings.simplefilter("ignore")
    from lora_tui.engine.sharing import configure_sharing

    configure_sharing(True)
    answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        try:
            facts = inspect(Path(request["pte"]), Path(request["ptd"]))
            answer = {"facts": dataclasses.asdict(facts)}
        except ArtifactError as err:
            answer = {"error": str(err)}
        except Exception as err:  # anything else the runtime raises is this program's fault
            answer = {"error": f"{request['pte']}: {type(err).__name__}: {err}"}
        answer["seconds"] = time.perf_counter() - started
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    _child_main(sys.argv[1] if len(sys.argv) > 1 else os.devnull)
