"""``lora-tui eval --ray`` (issue 30) on a local Ray cluster: the same answers as the local
eval, on a fresh cluster whatever ``$RAY_ADDRESS`` says; nothing lost or answered twice
when an actor is killed or the driver is stopped and resumed; a sweep whose node dies
stops with what it saved (issue 42); then on a cluster of two Ray nodes on this machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from lora_tui.format import sha256_file
from lora_tui.judging.results import read_results
from tests.support.artifacts import TinyArtifacts
from tests.support.prompts import write_prompts

pytest.importorskip("ray")

PROGRAMS = ("full", "base")


def eval_args(tiny_artifacts: TinyArtifacts, prompts: Path, tokens: int = 12) -> list[str]:
    programs = [str(tiny_artifacts.program(n)) for n in PROGRAMS]
    args = ["eval", "--weights", str(tiny_artifacts.foundation), *programs]
    return args + ["--prompts", str(prompts), "--max-new-tokens", str(tokens)]


def lora_tui(
    *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lora_tui.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def answers(path: Path) -> dict[tuple[str, str], str]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    keys = {(r["prompt"], r["program_sha256"], json.dumps(r["settings"])) for r in lines}
    assert len(keys) == len(lines), "an answer was saved twice"
    return {(r["prompt"], r["adapter"]): r["answer"] for r in lines}


def some_prompts(tmp_path: Path, count: int) -> Path:
    return write_prompts(
        tmp_path / "prompts.jsonl",
        [{"prompt": f"Count to {n}.", "regex": str(n)} for n in range(count)],
    )


def test_the_sweep_on_ray_answers_as_the_local_eval(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    """``--ray`` with no address starts a fresh local cluster: it never joins the one
    ``$RAY_ADDRESS`` names (here nothing answers there)."""
    args = eval_args(tiny_artifacts, some_prompts(tmp_path, 10))
    here = lora_tui(*args, "--json", "--out", str(tmp_path / "here.jsonl"))
    assert here.returncode == 0, here.stderr
    elsewhere = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9"}
    out = tmp_path / "ray.jsonl"
    on_ray = lora_tui(*args, "--json", "--ray", "--out", str(out), env=elsewhere)
    assert on_ray.returncode == 0, on_ray.stderr
    local, remote = json.loads(here.stdout), json.loads(on_ray.stdout)
    assert remote["scores"] == local["scores"]
    assert [(r["prompt"], r["adapter"], r["answer"]) for r in remote["results"]] == [
        (r["prompt"], r["adapter"], r["answer"]) for r in local["results"]
    ]
    assert answers(out) == answers(tmp_path / "here.jsonl")
    assert len(answers(out)) == 20
    hashes = {
        str(tiny_artifacts.program(n)): sha256_file(tiny_artifacts.program(n)) for n in PROGRAMS
    }
    assert all(hashes[r.program] == r.program_sha256 for r in read_results(out))


def wait_for_lines(path: Path, count: int, process: subprocess.Popen, timeout_s: float = 600):
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        if path.is_file() and len(path.read_bytes().splitlines()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {count} lines")


def actor_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "SweepWorker"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_a_killed_actor_loses_nothing_and_answers_nothing_twice(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    out = tmp_path / "ray.jsonl"
    args = [*eval_args(tiny_artifacts, some_prompts(tmp_path, 40), tokens=24), "--ray"]
    command = [sys.executable, "-m", "lora_tui.cli", *args, "--out", str(out)]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_lines(out, 1, driver)
    killed = actor_pids()
    assert killed, "no actor process to kill"
    os.kill(killed[0], signal.SIGKILL)
    _, stderr = driver.communicate(timeout=900)
    assert driver.returncode == 0, stderr
    assert len(answers(out)) == 80


def test_a_stopped_driver_resumes_where_it_was(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    out = tmp_path / "ray.jsonl"
    prompts = some_prompts(tmp_path, 40)
    args = [*eval_args(tiny_artifacts, prompts, tokens=24), "--ray", "--out", str(out)]
    driver = subprocess.Popen(
        [sys.executable, "-m", "lora_tui.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_lines(out, 8, driver)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    kept = len(out.read_bytes().splitlines())
    assert 8 <= kept < 80
    done = lora_tui(*args, "--resume", "--json")
    assert done.returncode == 0, done.stderr
    assert len(answers(out)) == 80
    local = lora_tui(*eval_args(tiny_artifacts, prompts, tokens=24), "--json")
    assert json.loads(done.stdout)["scores"] == json.loads(local.stdout)["scores"]


def stop_processes(processes: list[psutil.Process]) -> None:
    """End these processes (ours, recorded by the test), politely first."""
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=10)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def test_a_sweep_whose_node_dies_stops_with_what_it_saved(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    """The local cluster's raylet killed mid-sweep: no node can take the work any more. The
    driver stops within a minute (it used to wait for ever) with one line, and what it
    saved is whole. The actors answer on for a few seconds after their raylet is gone, so
    the sweep is far longer than that: it ends the same in every case."""
    out = tmp_path / "ray.jsonl"
    args = [*eval_args(tiny_artifacts, some_prompts(tmp_path, 1000), tokens=24), "--ray"]
    command = [sys.executable, "-m", "lora_tui.cli", *args, "--out", str(out)]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cluster: list[psutil.Process] = []
    try:
        wait_for_lines(out, 1, driver)
        cluster = psutil.Process(driver.pid).children(recursive=True)
        raylets = [p for p in cluster if p.name() == "raylet"]
        assert len(raylets) == 1, [p.name() for p in cluster]
        raylets[0].kill()
        killed = time.monotonic()
        _, stderr = driver.communicate(timeout=90)
        assert time.monotonic() - killed < 90
    finally:
        stop_processes([psutil.Process(driver.pid), *cluster] if driver.poll() is None else cluster)
    assert driver.returncode == 1, stderr
    saved = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert 1 <= len(saved) < 2000
    assert [line for line in stderr.splitlines() if line.strip()] == [
        "lora-tui eval: error: no Ray node is left to take the work; "
        f"{len(saved)} of 2000 answers are saved in {out}; --resume goes on from there"
    ]


@pytest.fixture
def two_node_cluster(monkeypatch) -> str:
    """A Ray head and a second node on this machine, one CPU each: the multi-node path.
    ``ray start --head`` turns on Ray's token authentication; the node and the driver
    present the token it wrote (``~/.ray/auth_token``) when told to. The nodes keep their
    files (and the address a later ``ray.init`` would find) in a folder of their own, and
    only their processes are stopped after (``ray stop`` would stop every cluster of
    this user on the machine)."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    assert ray is not None
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    address = "127.0.0.1:6390"
    quiet = {"capture_output": True, "text": True, "timeout": 180}
    own = tempfile.mkdtemp(prefix="lt-ray-", dir="/tmp")  # short: it holds Unix sockets
    head = [ray, "start", "--head", "--port", "6390", "--num-cpus", "1", "--temp-dir", own]
    started = subprocess.run(
        [*head, "--include-dashboard", "false", "--disable-usage-stats"], **quiet
    )
    try:
        assert started.returncode == 0, started.stderr
        node = [ray, "start", "--address", address, "--num-cpus", "1", "--temp-dir", own]
        joined = subprocess.run(node, **quiet)
        assert joined.returncode == 0, joined.stderr
        yield address
    finally:
        stop_processes(processes_of(own))
        shutil.rmtree(own, ignore_errors=True)


def processes_of(temp_dir: str) -> list[psutil.Process]:
    """The Ray processes started with ``temp_dir`` on their command line, and theirs
    (workers rename themselves and are found as the raylets' children)."""
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["cmdline", "uids"]):
        if process.info["uids"] is None or process.info["uids"].real != os.getuid():
            continue
        if any(temp_dir in part for part in process.info["cmdline"] or []):
            for each in [process, *process.children(recursive=True)]:
                found[each.pid] = each
    return list(found.values())


def test_the_sweep_runs_on_two_ray_nodes(
    tiny_artifacts: TinyArtifacts, tmp_path: Path, two_node_cluster: str
) -> None:
    args = eval_args(tiny_artifacts, some_prompts(tmp_path, 10))
    done = lora_tui(*args, "--json", "--ray", two_node_cluster)
    assert done.returncode == 0, done.stderr
    local = lora_tui(*args, "--json")
    assert json.loads(done.stdout)["scores"] == json.loads(local.stdout)["scores"]
    assert [r["answer"] for r in json.loads(done.stdout)["results"]] == [
        r["answer"] for r in json.loads(local.stdout)["results"]
    ]
