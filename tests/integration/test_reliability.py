"""Bad input and bad luck in the app: nothing is lost, nothing hangs, nothing is left behind.

The first tests drive the app headless against the fake engine; the last ones use the real
engine process on the tiny fixtures, because what they check is the engine itself: a
native crash, a prompt longer than the context, byte tokens that are not whole UTF-8.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lora_tui.engine import EngineError, GenerationSettings, ModelHost
from lora_tui.engine.loading import load_module
from lora_tui.engine.preflight import CHECKER_MODULE
from tests.support.artifacts import MAX_CONTEXT, TinyArtifacts
from tests.support.damage import KINDS, FuzzEngine, damage
from tests.support.pilot import SIZE, notifications, pane, send
from tests.support.real_app import real_app, wait_for

# --- the real engine -------------------------------------------------------------------------


def worker_pid(app) -> int:
    """The engine's worker process (the app runs one per foundation; here, one)."""
    [engine] = app.engine.engines.values()
    return engine.pid


async def test_killed_engine_is_replaced_and_the_next_prompt_prefills_the_kept_turns(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    """The real engine process dies (SIGKILL, as a native crash ends it): the app notices,
    starts another and loads the adapters into it with their conversations, whose next
    prompt rebuilds the KV cache from the kept turns. (A reply cut off mid-way is the fake
    engine's test above; the tiny model answers too fast to kill it reliably mid-reply.)"""
    app = real_app(
        tiny_artifacts.foundation,
        [tiny_artifacts.program("full"), tiny_artifacts.program("partial")],
        tmp_path,
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all(p.state == "ready" for p in app.main.panes.values()))
        await send(pilot, "What is the capital of France?")
        await wait_for(
            pilot,
            lambda: all(p.conversation.last_reply is not None for p in app.main.panes.values()),
        )
        await wait_for(pilot, lambda: all(p.state == "ready" for p in app.main.panes.values()))
        full = pane(app, "full")
        first_turns = list(full.conversation.turns)
        old_pid = worker_pid(app)
        os.kill(old_pid, signal.SIGKILL)
        await wait_for(pilot, lambda: app.engine is not None and worker_pid(app) != old_pid)
        assert any("engine process exited" in n for n in notifications(app))
        await wait_for(pilot, lambda: all(p.state == "ready" for p in app.main.panes.values()))
        assert full.conversation.turns == first_turns  # the conversation is still on screen
        app.session.settings = GenerationSettings(temperature=0.0, max_new_tokens=6)
        await send(pilot, "And of Italy?")
        await wait_for(pilot, lambda: full.state == "ready" and len(full.conversation.turns) == 4)
        assert full.last_stats and full.last_stats.reused_tokens == 0  # a new KV cache...
        assert full.last_stats.prompt_tokens > 30  # ...prefilled with the kept turns
        assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie"


async def test_prompt_longer_than_the_context_is_an_error_in_its_pane(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    app = real_app(tiny_artifacts.foundation, [tiny_artifacts.program("full")], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        full = pane(app, "full")
        await wait_for(pilot, lambda: full.state == "ready")
        await send(pilot, "word " * (MAX_CONTEXT * 2))
        await wait_for(pilot, lambda: full.state == "ready" and len(full.conversation.turns) == 2)
        assert "context holds" in full.conversation.turns[-1].note
        # Random weights emit byte tokens that are not whole UTF-8; they stream and show.
        await send(pilot, "Tell me about café ✓ 日本語")
        await wait_for(pilot, lambda: full.state == "ready" and len(full.conversation.turns) == 4)
        assert full.conversation.last_reply and full.conversation.turns[-1].note == ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_quits_the_app_and_its_engine(
    tiny_artifacts: TinyArtifacts, tmp_path: Path, signum: int
) -> None:
    """The app in a real terminal (a pty): the signal ends it, and no engine or pre-flight
    process is left behind."""
    command = [sys.executable, "-m", "lora_tui.cli", "--weights", str(tiny_artifacts.foundation)]
    app, leader = start_in_pty([*command, str(tiny_artifacts.program("full"))])
    try:
        process = psutil.Process(app.pid)
        deadline = time.monotonic() + 120
        while not process.children(recursive=True) and time.monotonic() < deadline:
            _drain(leader)
            time.sleep(0.2)
        children = process.children(recursive=True)
        assert children, "the engine process never started"
        time.sleep(2)
        app.send_signal(signum)
        deadline = time.monotonic() + 30
        while app.poll() is None and time.monotonic() < deadline:
            _drain(leader)
            time.sleep(0.1)
        assert app.poll() is not None, "the app did not quit"
        gone, alive = psutil.wait_procs(children, timeout=20)
        assert not alive, f"left behind: {alive}"
    finally:
        if app.poll() is None:
            app.kill()
        os.close(leader)


def test_nothing_of_ours_outlives_an_app_killed_with_sigkill(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    """SIGKILL gives the app no time to end anything. Its engine's worker, the worker's
    lanes and its pre-flight checker are stopped first (SIGSTOP), as if each were stuck in
    native code and could not notice the app go: the kernel still ends every one."""
    # A copy no start has checked or packed yet, so the checker and the packer run too.
    copy = shutil.copytree(tiny_artifacts.out, tmp_path / "copy")
    command = [sys.executable, "-m", "lora_tui.cli", "--weights", str(copy / "foundation.ptd")]
    programs = [str(copy / f"{n}.pte") for n in ("full", "partial")]
    app, leader = start_in_pty([*command, *programs])
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300  # the engine and its checker import the runtime
        while time.monotonic() < deadline and not _engine_at_full_size(tree):
            _drain(leader)
            time.sleep(0.2)
            tree = _descendants(app.pid)
        assert _engine_at_full_size(tree), f"no worker with two lanes and a checker: {tree}"
        stuck = [p for p in tree if "resource_tracker" not in " ".join(_cmdline(p))]
        for process in stuck:
            with contextlib.suppress(psutil.NoSuchProcess):  # a packer or checker done by now
                process.send_signal(signal.SIGSTOP)
        app.kill()
        app.wait(timeout=30)
        _, alive = psutil.wait_procs(tree, timeout=20)
        assert not alive, f"left behind: {alive}"
    finally:
        if app.poll() is None:
            app.kill()
        os.close(leader)
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.kill()


def _descendants(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).children(recursive=True)
    return []


def _cmdline(process: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return process.cmdline()
    return []


def _parent(process: psutil.Process) -> int | None:
    """Its parent's pid; None once it has ended (the packer and the checker end on their
    own, between one look at the tree and the next)."""
    with contextlib.suppress(psutil.Error):
        return process.ppid()
    return None


def _engine_at_full_size(tree: list[psutil.Process]) -> bool:
    """The engine's worker, with its checker and two lanes (its children that are not the
    checker) alive under it."""
    checkers = [p for p in tree if CHECKER_MODULE in _cmdline(p)]
    worker = _parent(checkers[0]) if checkers else None
    return worker is not None and sum(_parent(p) == worker for p in tree) >= 3


def start_in_pty(command: list[str]) -> tuple[subprocess.Popen, int]:
    """Run lora-tui in a real terminal; returns it and the terminal's end to read and type."""
    leader, follower = pty.openpty()
    app = subprocess.Popen(
        command,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"},
        start_new_session=True,
    )
    os.close(follower)
    return app, leader


def test_results_file_parses_after_the_app_is_killed_mid_turn(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    """SIGKILL 0.3 s after a prompt, while its replies stream: every line already written
    parses, and the answers that finished before are all there."""
    from lora_tui.judging.records import Record
    from lora_tui.judging.results import read_results

    results = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "lora_tui.cli", "--weights", str(tiny_artifacts.foundation)]
    programs = [str(tiny_artifacts.program(n)) for n in ("full", "partial")]
    app, leader = start_in_pty([*command, *programs, "--results", str(results)])
    try:
        deadline = time.monotonic() + 120
        finished: list[Record] = []
        while len(finished) < 2 and time.monotonic() < deadline:
            # Typed until it is answered: keys sent before the app reads them are lost.
            os.write(leader, b"Hello there\r")
            for _ in range(5):
                _drain(leader)
                time.sleep(0.2)
            finished = read_results(results) if results.exists() else []
        assert len(finished) >= 2, "no answers were saved"
        os.write(leader, b"Tell me a long story\r")
        time.sleep(0.3)
        app.kill()
        app.wait(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
        os.close(leader)
    lines = results.read_text(encoding="utf-8").splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)  # whole lines only
    assert {r.adapter for r in read_results(results)} == {"full", "partial"}


def _drain(fd: int) -> None:
    """Read what the app drew, so it never blocks on a full terminal."""
    import select

    while select.select([fd], [], [], 0)[0]:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


# --- damaged programs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_folder(tiny_artifacts: TinyArtifacts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The foundation and two healthy programs with no manifest, so no hash can catch a
    damaged copy and only loading can tell."""
    folder = tmp_path_factory.mktemp("fuzz")
    for name in ("foundation.ptd", "full.pte", "partial.pte"):
        shutil.copy(tiny_artifacts.out / name, folder / name)
    return folder


def test_damaged_programs_fail_alone(
    bare_folder: Path, tiny_artifacts: TinyArtifacts, other_foundation: Path, tmp_path: Path
) -> None:
    """Each damaged copy is loaded between two healthy programs in the app's engine: the
    healthy ones always answer, and nothing hangs. A copy that is refused gets one line
    that names it; only flips in weight values can load (no check can see them here)."""
    original = (bare_folder / "full.pte").read_bytes()
    rng = random.Random(0)
    copies = [(kind, damage(original, kind, rng)) for kind in KINDS for _ in range(2)]
    copies.append(("another model", (other_foundation / "base.pte").read_bytes()))
    healthy = [bare_folder / "full.pte", bare_folder / "partial.pte"]
    with FuzzEngine(
        bare_folder / "foundation.ptd", healthy, tiny_artifacts.base_dir, tmp_path / "log"
    ) as engine:
        for index, (kind, data) in enumerate(copies):
            path = tmp_path / f"damaged-{index}.pte"
            path.write_bytes(data)
            outcome = engine.try_program(path)
            assert outcome.verdict in ("rejected", "crashed a child", "loaded"), (kind, outcome)
            if outcome.verdict == "loaded":
                assert kind in ("named-data", "delegate", "flatbuffer"), outcome
            else:
                assert path.name in outcome.detail and "\n" not in outcome.detail, outcome
            if kind in ("cut", "another model"):
                assert outcome.verdict == "rejected", outcome


def test_a_program_that_fails_verification_is_refused(bare_folder: Path, tmp_path: Path) -> None:
    """A flipped byte in the flatbuffer's tables fails ExecuTorch's InternalConsistency
    verification. _load_for_executorch alone ignores the verification it is asked for and
    loaded this copy; load_module refuses it in one line that names it."""
    data = bytearray((bare_folder / "full.pte").read_bytes())
    data[64] ^= 0xFF  # inside the flatbuffer's tables, before any weight
    program = tmp_path / "flipped.pte"
    program.write_bytes(bytes(data))
    with pytest.raises(EngineError, match=r"flipped\.pte: could not load"):
        load_module(program, bare_folder / "foundation.ptd")


def test_a_listed_program_with_a_flipped_weight_is_refused(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    """Flips in weight values load and run; the manifest's hash of each program is what
    catches them."""
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    program = out / "full.pte"
    program.write_bytes(damage(program.read_bytes(), "named-data", random.Random(3)))
    host = ModelHost(out / "foundation.ptd")
    with pytest.raises(EngineError, match="SHA-256 differs"):
        host.load(program)
    host.end_checks()


def test_bench_reports_a_bad_program_as_an_error_row(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    flipped = out / "flipped.pte"
    flipped.write_bytes(damage((out / "full.pte").read_bytes(), "cut", random.Random(1)))
    args = [str(out / "partial.pte"), str(flipped), str(out / "base.pte")]
    command = [sys.executable, "-m", "lora_tui.cli", "bench", "--weights"]
    done = subprocess.run(
        [*command, str(out / "foundation.ptd"), *args, "--max-new-tokens", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    rows = json.loads(done.stdout)["adapters"]
    assert [row["name"] for row in rows] == ["partial", "flipped", "base"]
    assert "truncated" in rows[1]["error"] and "error" not in rows[0]
    assert rows[0]["new_tokens"] == 3 and rows[2]["new_tokens"] == 3


# --- the pre-flight child itself -------------------------------------------------------------
