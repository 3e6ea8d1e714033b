"""The pre-flight check's child process, replaced by scripts that hang or crash: a bad
program is refused in time and in one line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from lora_tui.engine import EngineError

# A stand-in checker: says it is ready on the connection it is given, takes one request,
# then does what the test appends.
READY = (
    "import sys; from multiprocessing.connection import Connection;"
    " from lora_tui.engine.protocol import CheckerReady;"
    " conn = Connection(int(sys.argv[-1])); conn.send(CheckerReady()); conn.recv();"
)


def test_a_program_that_hangs_the_check_is_refused_in_time(monkeypatch, tmp_path: Path) -> None:
    import lora_tui.engine.preflight as preflight

    monkeypatch.setattr(preflight, "CHECK_TIMEOUT_S", 2.0)
    checker = preflight.Preflight()
    checker.command = [sys.executable, "-c", READY + " import time; time.sleep(60)"]
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"stuck\.pte: did not load within 2 s"):
        checker.check(tmp_path / "stuck.pte", tmp_path / "foundation.ptd")
    assert time.monotonic() - started < 30
    assert checker.idle_s is None  # the hung child was killed; the next check starts anew


def test_a_program_that_crashes_the_check_is_refused(tmp_path: Path) -> None:
    from lora_tui.engine.preflight import Preflight

    checker = Preflight()
    checker.command = [sys.executable, "-c", READY + " import os; os.abort()"]
    with pytest.raises(EngineError, match=r"bad\.pte: crashed the program check .*SIGABRT"):
        checker.check(tmp_path / "bad.pte", tmp_path / "foundation.ptd")
