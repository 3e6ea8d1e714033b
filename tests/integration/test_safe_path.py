"""No code from the working folder (issue 42): programs opened from a downloaded pack's folder
that holds ``lora_tui/``, ``multiprocessing/``, ``pip/`` and ``torch/`` packages run none of
them, in any process the tool starts: the pre-flight checker, the engine's worker and its
lanes, the demo's build child and its ``pip download``, ``eval``'s Ray workers.

Each planted package writes a marker when imported and then hands over to the real one, as
a malicious pack would, so everything runs to its end and the markers tell what was
imported from where.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import pytest

from lora_tui.demo.build import build_demos
from lora_tui.demo.build_child import BuildFailed, BuildProcess
from lora_tui.engine.protocol import Loaded, LoadFailed
from lora_tui.engine.worker import EngineProcess, EventCollector
from tests.support.artifacts import TinyArtifacts
from tests.support.prompts import write_prompts

PLANTED = ("lora_tui", "multiprocessing", "pip", "torch")

# Writes a marker (the importing process's command line), then imports the real package
# from the rest of the path and stands in for it.
PLANT = textwrap.dedent(
    """
    import importlib, os, sys
    with open(os.path.join({markers!r}, f"{{__name__}}.{{os.getpid()}}"), "w") as marker:
        marker.write(" ".join(sys.argv))
    _here = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    _path = sys.path[:]
    sys.path[:] = [p for p in _path if os.path.realpath(p or ".") != _here]
    del sys.modules[__name__]
    try:
        sys.modules[__name__] = importlib.import_module(__name__)
    finally:
        sys.path[:] = _path
    """
)


@pytest.fixture
def pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working folder, with the planted packages in it."""
    folder, markers = tmp_path / "pack", tmp_path / "markers"
    markers.mkdir()
    for name in PLANTED:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(PLANT.format(markers=str(markers)))
    monkeypatch.chdir(folder)
    # What the session's entry points turned on stays theirs: this test starts from off.
    monkeypatch.setenv("PYTHONSAFEPATH", "")
    return folder


def assert_nothing_ran(pack: Path) -> None:
    markers = pack.parent / "markers"
    ran = {p.name: p.read_text() for p in markers.iterdir()}
    assert not ran, f"imported from the working folder (package.pid: command line): {ran}"


def lora_tui(pack: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it from the pack (-P, as its console script starts: the
    script's folder, not the working one, leads its path)."""
    command = [sys.executable, "-P", "-m", "lora_tui.cli", *args]
    return subprocess.run(command, cwd=pack, capture_output=True, text=True, timeout=600)


def programs(tiny_artifacts: TinyArtifacts) -> list[str]:
    return ["--weights", str(tiny_artifacts.foundation), str(tiny_artifacts.program("full"))]


def test_bench_and_eval_from_a_pack_folder_run_none_of_its_code(
    tiny_artifacts: TinyArtifacts, pack: Path
) -> None:
    bench = lora_tui(pack, "bench", *programs(tiny_artifacts), "--max-new-tokens", "2")
    assert bench.returncode == 0, bench.stderr[-2000:]
    prompts = write_prompts(pack / "prompts.jsonl", [{"prompt": "Count to 3.", "regex": "3"}])
    args = [*programs(tiny_artifacts), "--prompts", str(prompts), "--max-new-tokens", "2"]
    evaluated = lora_tui(pack, "eval", *args)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert_nothing_ran(pack)


@pytest.mark.parametrize("on_parent_path", [False, True], ids=["console-script", "python-m"])
def test_the_engine_worker_and_its_children_run_none_of_its_code(
    tiny_artifacts: TinyArtifacts, pack: Path, monkeypatch: pytest.MonkeyPatch, on_parent_path
) -> None:
    """The app's engine, started from the pack. With ``on_parent_path`` the parent has the
    pack on its own path, as one started there with ``python -m`` has (after importing
    lora_tui from elsewhere): multiprocessing would hand that path to the spawned worker."""
    if on_parent_path:
        monkeypatch.syspath_prepend(str(pack))
    events = EventCollector()
    engine = EngineProcess(tiny_artifacts.foundation, events, log_path=pack.parent / "engine.log")
    try:
        engine.load(tiny_artifacts.program("full"))
        got = events.wait_for(lambda got: any(isinstance(e, Loaded | LoadFailed) for e in got))
    finally:
        engine.close()
    assert [type(e) for e in got if isinstance(e, Loaded | LoadFailed)] == [Loaded]
    assert_nothing_ran(pack)


def test_the_demo_build_and_its_pip_download_run_none_of_its_code(
    pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's first run from the pack, as far as its build child's ``pip download``,
    which fails at once without an index (no network needed)."""
    monkeypatch.setenv("LORA_TUI_CACHE", str(pack.parent / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    events = EventCollector()
    build = BuildProcess(partial(build_demos, ("none",)), pack.parent / "build.log")
    build.start(events)
    try:
        got = events.wait_for(lambda got: any(isinstance(e, BuildFailed) for e in got), 300)
    finally:
        build.stop()
    [failed] = [e for e in got if isinstance(e, BuildFailed)]
    assert "pip download" in failed.error
    assert_nothing_ran(pack)


def test_eval_on_ray_from_a_pack_folder_runs_none_of_its_code(
    tiny_artifacts: TinyArtifacts, pack: Path
) -> None:
    """Ray puts the driver's working folder first on every worker's path."""
    pytest.importorskip("ray")
    write_prompts(pack / "prompts.jsonl", [{"prompt": "Count to 3.", "regex": "3"}])
    out = pack.parent / "answers.jsonl"
    # Relative paths, from the pack: the workers read them from where the driver runs.
    foundation, program = (
        os.path.relpath(p, pack)
        for p in (tiny_artifacts.foundation, tiny_artifacts.program("full"))
    )
    args = ["--weights", foundation, program, "--prompts", "prompts.jsonl"]
    done = lora_tui(pack, "eval", "--ray", *args, "--max-new-tokens", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(out.read_text().splitlines()) == 1
    assert_nothing_ran(pack)
