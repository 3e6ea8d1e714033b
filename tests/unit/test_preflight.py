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


# A stand-in checker that passes every program it is asked about, with fixed facts.
PASSES = (
    "import sys; from multiprocessing.connection import Connection;"
    " from lora_tui.engine.protocol import CheckerReady, Checked;"
    " from lora_tui.engine.loading import ProgramFacts;"
    " conn = Connection(int(sys.argv[-1])); conn.send(CheckerReady());"
    " facts = ProgramFacts(64, 32, 100, 1, (2, 3), 7);"
    " [conn.send(Checked(facts, None, 0.1)) for _ in iter(conn.recv, None)]"
)
CRASHES = READY + " import os; os.abort()"


def files(tmp_path: Path) -> tuple[Path, Path]:
    pte, ptd = tmp_path / "a.pte", tmp_path / "foundation.ptd"
    pte.write_bytes(b"program")
    ptd.write_bytes(b"weights")
    return pte, ptd


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LORA_TUI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_program_that_passed_is_not_checked_again_until_it_changes(
    tmp_path: Path, own_cache: Path
) -> None:
    from lora_tui.engine.preflight import Preflight

    pte, ptd = files(tmp_path)
    checker = Preflight()
    checker.command = [sys.executable, "-c", PASSES]
    facts = checker.check(pte, ptd)
    assert facts.eos_ids == (2, 3) and facts.foundation_id == 7
    checker.close()

    later = Preflight()  # the next start: a checker that would crash is never started
    later.command = [sys.executable, "-c", CRASHES]
    assert later.check(pte, ptd) == facts
    assert later.idle_s is None

    pte.write_bytes(b"program, changed")
    with pytest.raises(EngineError, match="crashed the program check"):
        later.check(pte, ptd)
    ptd.write_bytes(b"other weights")  # and a changed foundation too
    with pytest.raises(EngineError, match="crashed the program check"):
        later.check(tmp_path / "a.pte", ptd)


@pytest.mark.parametrize(
    "damage",
    [
        "not json",
        '{"max_context": -1, "max_prefill": 1, "vocab_size": 1, "bos_id": null,'
        ' "eos_ids": [], "foundation_id": null}',
        '{"max_context": true, "max_prefill": 1, "vocab_size": 1, "bos_id": null,'
        ' "eos_ids": [], "foundation_id": null}',
        '{"max_context": 8}',
    ],
)
def test_a_damaged_record_is_not_believed(tmp_path: Path, own_cache: Path, damage: str) -> None:
    from lora_tui.engine import preflight

    pte, ptd = files(tmp_path)
    checker = preflight.Preflight()
    checker.command = [sys.executable, "-c", PASSES]
    checker.check(pte, ptd)
    checker.close()
    [kept] = preflight.records_folder().glob("*.json")
    kept.write_text(damage)
    assert preflight.recorded(pte, ptd) is None


def test_records_of_programs_that_are_gone_are_deleted(tmp_path: Path, own_cache: Path) -> None:
    from lora_tui.engine import preflight

    pte, ptd = files(tmp_path)
    checker = preflight.Preflight()
    checker.command = [sys.executable, "-c", PASSES]
    checker.check(pte, ptd)
    other = tmp_path / "b.pte"
    other.write_bytes(b"another program")
    pte.unlink()  # deleted since it passed
    checker.check(other, ptd)
    checker.close()
    [kept] = preflight.records_folder().glob("*.json")
    assert preflight.recorded(other, ptd) is not None
