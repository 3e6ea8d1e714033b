"""The Ray sweep with no cluster and no model: its shards, its refusal without Ray, the
fresh local cluster it starts, and, over a stand-in for Ray, a cluster that stops
answering and a program that changes under the sweep."""

from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import EngineError, GenerationSettings, ReplyEnd
from lora_tui.format import sha256_file
from lora_tui.judging.evaluate import PromptCase
from lora_tui.judging.sweep import (
    RAY_MISSING,
    Patience,
    SweepProgram,
    SweepStopped,
    SweepWorker,
    connect,
    make_shards,
    run_sweep,
)

A, B = Path("fp32/foundation.ptd"), Path("q4/foundation.ptd")
SETTINGS = GenerationSettings(temperature=0.0, max_new_tokens=4)
QUICK = Patience(poll_s=0.01, stall_s=0.3, query_s=0.2, get_s=1.0, shutdown_s=1.0)


def test_shards_cover_every_wanted_answer_once_in_small_pieces() -> None:
    programs = [SweepProgram(A, Path("fp32/nobel.pte"), "nobel · fp32", "aa")]
    programs.append(SweepProgram(B, Path("q4/nobel.pte"), "nobel · 8da4w", "bb"))
    cases = [PromptCase(f"q{i}", "g") for i in range(10)]
    answered = {("q3", "nobel · fp32"), ("q4", "nobel · fp32")}
    shards = make_shards(programs, cases, lambda i, p: (f"q{i}", p.name) not in answered, 4)
    covered = [(i, s.program.name) for s in shards for i, _ in s.cases]
    assert len(covered) == len(set(covered)) == 18
    assert all(len(s.cases) <= 4 for s in shards)
    assert (3, "nobel · fp32") not in covered and (3, "nobel · 8da4w") in covered
    assert {s.program.weights for s in shards} == {A, B}


def test_without_ray_the_sweep_is_refused_in_one_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(EngineError) as refused:
        connect(None)
    assert str(refused.value) == RAY_MISSING == "--ray needs Ray: pip install 'lora-tui[ray]'"


class _RayError(Exception):
    pass


class _TaskError(_RayError):
    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


ERRORS = types.SimpleNamespace(
    AuthenticationError=type("AuthenticationError", (_RayError,), {}),
    RayError=_RayError,
    RayActorError=type("RayActorError", (_RayError,), {}),
    RaySystemError=type("RaySystemError", (_RayError,), {}),
    GetTimeoutError=type("GetTimeoutError", (_RayError,), {}),
    ObjectLostError=type("ObjectLostError", (_RayError,), {}),
    RayTaskError=_TaskError,
)


def test_no_address_starts_a_fresh_local_cluster_and_an_address_is_joined(monkeypatch) -> None:
    """``address=None`` would join ``$RAY_ADDRESS`` or the machine's last ``ray start``."""
    joined: list[Any] = []
    fake = types.SimpleNamespace(exceptions=ERRORS, init=lambda **kw: joined.append(kw["address"]))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    connect(None)
    connect("10.0.0.2:6379")
    assert joined == ["local", "10.0.0.2:6379"]


class StandInHost:
    """What a ``SweepWorker`` asks of its ``ModelHost``, with no model."""

    def __init__(self, on_load=lambda path: None) -> None:
        self.on_load = on_load

    def load(self, path: Path, name: str) -> Any:
        self.on_load(path)
        return types.SimpleNamespace(name=name, path=str(path))

    def end_checks(self) -> None:
        pass

    def clear(self, names: list[str]) -> None:
        pass

    def answer(self, name: str, messages: list, settings: GenerationSettings) -> ReplyDone:
        return ReplyDone(name, "an answer", ReplyEnd.STOP, None)


class Ref:
    """A stand-in task's result: its answers or its error, ready at a time (None: never)."""

    def __init__(self, value: Any, error: Exception | None, ready_at: float | None) -> None:
        self.value, self.error, self.ready_at = value, error, ready_at


class StandInRay:
    """Ray as the sweep uses it: actors that answer in this thread (the real
    ``SweepWorker.answer`` over a ``StandInHost``), their answers ready at once, after
    ``delay_s``, or never (None); ``nodes`` what the cluster says of its nodes."""

    exceptions = ERRORS

    def __init__(self, host: StandInHost, delay_s: float | None = 0.0, nodes=list) -> None:
        self.host, self.delay_s, self.nodes = host, delay_s, nodes
        self.answered: list[str] = []  # the adapter of every answer the sweep handed over

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 2.0}

    def remote(self, **options: Any):
        ray = self

        class ActorClass:
            def options(self, **options: Any) -> ActorClass:
                return self

            def remote(self, *args: Any) -> Any:
                worker = SweepWorker.__new__(SweepWorker)
                worker.host, worker.loaded = ray.host, {}
                return types.SimpleNamespace(answer=types.SimpleNamespace(remote=ray._task(worker)))

        return lambda cls: ActorClass()

    def _task(self, worker: SweepWorker):
        def remote(shard: Any, settings: GenerationSettings) -> Ref:
            try:
                value, error = worker.answer(shard, settings), None
            except Exception as err:
                value, error = None, _TaskError(err)
            ready_at = None if self.delay_s is None else time.monotonic() + self.delay_s
            return Ref(value, error, ready_at)

        return remote

    def wait(self, refs: list, num_returns: int, timeout: float) -> tuple[list, list]:
        ready = [r for r in refs if r.ready_at is not None and r.ready_at <= time.monotonic()]
        if not ready:
            time.sleep(timeout)
        return ready[:num_returns], [r for r in refs if r not in ready[:num_returns]]

    def get(self, ref: Ref, timeout: float) -> Any:
        if ref.error is not None:
            raise ref.error
        return ref.value


def sweep_of(tmp_path: Path, prompts: int = 3) -> tuple[Path, list]:
    program = tmp_path / "a.pte"
    program.write_bytes(b"the program the driver hashed")
    sweep = SweepProgram(A, program, "a", sha256_file(program))
    return program, make_shards([sweep], [PromptCase(f"q{i}", "g") for i in range(prompts)])


def run(ray: StandInRay, shards: list) -> list[str]:
    """Run the sweep over the stand-in; the adapter of every answer it handed over."""

    def on_answers(shard: Any, info: Any, results: list) -> None:
        ray.answered.extend(r.adapter for r in results)

    run_sweep(ray, shards, SETTINGS, None, True, on_answers, QUICK)
    return ray.answered


ALIVE = [{"Alive": True, "Resources": {}}]  # an autoscaling head: no CPU, more nodes to come
DEAD = [{"Alive": False, "Resources": {"CPU": 2.0}}]


@pytest.mark.parametrize("cluster", ["dead node", "no node", "gone"])
def test_a_cluster_with_no_live_node_stops_the_sweep(tmp_path: Path, cluster: str) -> None:
    """The raylet died, or the cluster went away (a call to it never returns): no shard
    comes back, ever."""
    _, shards = sweep_of(tmp_path)
    over = threading.Event()
    nodes = {"dead node": lambda: DEAD, "no node": list, "gone": lambda: over.wait() and []}
    ray = StandInRay(StandInHost(), delay_s=None, nodes=nodes[cluster])
    started = time.monotonic()
    try:
        with pytest.raises(SweepStopped) as stopped:
            run(ray, shards)
    finally:
        over.set()
    assert str(stopped.value) == "no Ray node is left to take the work"
    assert time.monotonic() - started < 5


def test_a_slow_shard_on_a_live_node_is_waited_for(tmp_path: Path) -> None:
    _, shards = sweep_of(tmp_path)
    ray = StandInRay(StandInHost(), delay_s=QUICK.stall_s * 3, nodes=lambda: ALIVE)
    assert run(ray, shards) == ["a"] * 3


def test_answers_from_a_program_that_changed_after_the_driver_hashed_it_are_refused(
    tmp_path: Path,
) -> None:
    program, shards = sweep_of(tmp_path)
    program.write_bytes(b"another program, put there before the actor loaded it")
    ray = StandInRay(StandInHost(), nodes=lambda: ALIVE)
    with pytest.raises(SweepStopped) as refused:
        run(ray, shards)
    assert ray.answered == []  # nothing handed over to be saved as the driver's program
    message = str(refused.value)
    assert message.startswith(f"{program}: changed during the sweep")
    assert sha256_file(program)[:12] in message and shards[0].program.sha256[:12] in message
    assert "\n" not in message


def test_a_program_that_changes_while_its_actor_loads_it_is_refused(tmp_path: Path) -> None:
    program, shards = sweep_of(tmp_path)

    def replace(path: Path) -> None:
        path.write_bytes(b"replaced while the runtime read it")

    ray = StandInRay(StandInHost(on_load=replace), nodes=lambda: ALIVE)
    with pytest.raises(EngineError, match="changed while a Ray actor loaded it"):
        run(ray, shards)
    assert ray.answered == []
