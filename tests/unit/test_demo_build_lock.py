"""Two demo first-runs at once: the second waits for the first's build, and says so,
instead of deleting its staging folder (issue 42). No model is built: the base fetch is a
stand-in that stops the build."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from lora_tui.demo.build import ensure_demo


class Reporter:
    def __init__(self) -> None:
        self.phases: list[str] = []

    def phase(self, name: str, total: int) -> None:
        self.phases.append(name)

    def advance(self, detail: str) -> None:
        pass

    def phase_done(self) -> None:
        pass


def test_a_second_build_waits_for_the_first_and_leaves_its_work_alone(tmp_path: Path) -> None:
    folder = tmp_path / "demo-v4"
    theirs = tmp_path / ".demo-v4.building-other-run"  # the first run's staging folder
    theirs.mkdir()
    (theirs / "foundation.ptd").write_bytes(b"half built")
    fetched = threading.Event()

    def fetch_base() -> Path:
        fetched.set()
        raise RuntimeError("no build in a unit test")

    reporter = Reporter()
    failures: list[BaseException] = []

    def second_run() -> None:
        try:
            ensure_demo(folder, fetch_base, {}, reporter)
        except BaseException as err:
            failures.append(err)

    first_runs_lock = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(first_runs_lock, fcntl.LOCK_EX)
        second = threading.Thread(target=second_run, daemon=True)
        second.start()
        deadline = time.monotonic() + 10
        while not reporter.phases and not fetched.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reporter.phases == ["wait: another lora-tui is building the demo"]
        assert not fetched.is_set()
        assert (theirs / "foundation.ptd").read_bytes() == b"half built"
    finally:
        os.close(first_runs_lock)
    # The first run is over (its lock went with it): what it left is a stale leftover.
    second.join(30)
    assert not second.is_alive()
    assert fetched.is_set() and not theirs.exists()
    assert [str(err) for err in failures] == ["no build in a unit test"]
