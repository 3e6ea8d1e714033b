"""A build in a child process: its events, its failures as one line each, and stopping it.
No model is built: the jobs are stand-ins (tests/support/build_jobs.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest

from lora_tui.demo.build_child import (
    BuildEvent,
    BuildFailed,
    BuildProcess,
    BuildProgress,
    BuildReady,
)
from tests.support import build_jobs

ROOT = Path(__file__).resolve().parents[2]


def run(job, log: Path, timeout: float = 60) -> list[BuildEvent]:
    events: list[BuildEvent] = []
    done = threading.Event()

    def on_event(event: BuildEvent) -> None:
        events.append(event)
        if not isinstance(event, BuildProgress):
            done.set()

    BuildProcess(job, log).start(on_event)
    assert done.wait(timeout), f"no end after {timeout} s: {events}"
    return events


def test_progress_then_the_programs(tmp_path: Path) -> None:
    events = run(build_jobs.quick, tmp_path / "build.log")
    assert events == [
        BuildProgress("fill nobel.pte", 0, 1),
        BuildProgress("fill nobel.pte", 1, 1),
        BuildReady(Path("/demo/foundation.ptd"), (Path("/demo/nobel.pte"),), 0.1, True),
    ]


@pytest.mark.parametrize(
    ("job", "says"),
    [
        (build_jobs.refused, "adapter.safetensors: truncated (3 of 1024 bytes) (details in "),
        (build_jobs.crashes, "the build stopped (exit 3); see "),
        (build_jobs.killed, "the build stopped (signal 9); see "),
    ],
)
def test_a_failure_is_one_line(job, says: str, tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    *_, last = run(job, log)
    assert isinstance(last, BuildFailed) and last.error.startswith(says)
    assert "\n" not in last.error
    if job is build_jobs.crashes:
        assert "native code says goodbye" in log.read_text()


def test_the_app_never_imports_torch_and_stopping_ends_the_child(tmp_path: Path) -> None:
    """The app, headless in a fresh interpreter, with a build that imports torch in its
    child: the app's own process has not imported torch or ExecuTorch while it builds, and
    quitting ends the child."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        import psutil
        from textual.widgets import Static
        from lora_tui.demo.build_child import BuildProcess
        from lora_tui.ui.app import LoraTuiApp
        from tests.support.build_jobs import torch_then_wait

        def no_engine(on_event):
            raise AssertionError("the build never finishes here")

        async def main():
            build = BuildProcess(torch_then_wait, Path({str(tmp_path / "build.log")!r}))
            app = LoraTuiApp([Path("/demo/nobel.pte")], no_engine, build=build,
                             memory_interval_s=3600, cursor_blink=False)
            async with app.run_test() as pilot:
                status = ""
                for _ in range(600):
                    await pilot.pause(0.05)
                    shown = app.main.panes["nobel"].query(".build-progress").first(Static)
                    status = str(shown.render()).replace("\\n", " ")
                    if "imported torch here" in status:
                        break
                heavy = [m for m in ("torch", "executorch", "exporter") if m in sys.modules]
                child = build.pid
                print("STATUS", status)
                print("HEAVY", heavy)
            print("CHILD ALIVE", psutil.pid_exists(child) and
                  psutil.Process(child).status() != psutil.STATUS_ZOMBIE)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported torch here" in done.stdout
    assert "HEAVY []" in done.stdout
    assert "CHILD ALIVE False" in done.stdout


def test_the_build_and_what_it_started_die_with_an_app_that_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves an app no time to stop its build: the kernel ends the build child and
    the program it started (as the demo's starts pip), even when neither could act (they are
    stopped here, as if stuck in native code)."""
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from lora_tui.demo.build_child import BuildProcess, BuildProgress
        from tests.support.build_jobs import starts_a_program_then_waits

        def on_event(event):
            if isinstance(event, BuildProgress):
                print("PIDS", build.pid, event.step, flush=True)

        build = BuildProcess(starts_a_program_then_waits, Path({str(tmp_path / "build.log")!r}))
        build.start(on_event)
        time.sleep(600)
        """
    )
    app = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    ours: list[psutil.Process] = []
    try:
        line = app.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("PIDS"), f"the build did not start: {line!r}"
        ours = [psutil.Process(int(pid)) for pid in line.split()[1:]]
        for process in ours:
            process.send_signal(signal.SIGSTOP)
        app.kill()
        app.wait(10)
        _, alive = psutil.wait_procs(ours, timeout=10)
        assert not alive, f"left behind: {alive}"
    finally:
        app.kill()
        for process in ours:
            if process.is_running():
                process.kill()
