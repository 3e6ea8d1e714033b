"""``lora-tui eval --ray``: the same sweep as the local ``eval``, on a Ray cluster.

The work is cut into shards, each a program and a few prompts. A Ray actor opens one
foundation (a ``ModelHost`` on one CPU, weight sharing on as the engine has it) and loads
the programs of the shards it is given, so an actor never opens a foundation it does not
need; each foundation gets its share of the cluster's CPUs in actors. The driver is the
only writer of the results file: an answer is saved when its shard comes back, so an actor
that dies loses only its shard in progress, which goes to a fresh actor, and nothing is
answered twice. ``--resume`` makes shards of what the file lacks.

Ray is an optional extra (``pip install 'lora-tui[ray]'``) and is imported only here.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lora_tui.common.safe_path import NEUTRAL_FOLDER, working_folder
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import AdapterInfo, EngineError, GenerationSettings, Message
from lora_tui.evaluate import EvalResult, PromptCase

SHARD_PROMPTS = 8  # prompts per shard: what a dead actor or a killed driver loses at most
MAX_REPLACED_ACTORS = 8  # actors that died and were replaced, before the sweep gives up
RAY_MISSING = "--ray needs Ray: pip install 'lora-tui[ray]'"


@dataclass(frozen=True)
class SweepProgram:
    """A program of the sweep, as the driver knows it without loading it."""

    weights: Path
    path: Path
    name: str  # its adapter name in the report ("nobel · 8da4w g32")


@dataclass(frozen=True)
class Shard:
    program: SweepProgram
    cases: tuple[tuple[int, PromptCase], ...]  # each with its place in the prompt set


def make_shards(
    programs: Sequence[SweepProgram],
    cases: Sequence[PromptCase],
    wanted: Callable[[int, SweepProgram], bool] = lambda index, program: True,
    size: int = SHARD_PROMPTS,
) -> list[Shard]:
    """Every (program, prompt) ``wanted`` (by the prompt's place in the set: not answered
    before), ``size`` prompts a shard."""
    shards = []
    for program in programs:
        todo = [(i, case) for i, case in enumerate(cases) if wanted(i, program)]
        shards += [Shard(program, tuple(todo[i : i + size])) for i in range(0, len(todo), size)]
    return shards


class SweepWorker:
    """A Ray actor's body: one foundation, the programs its shards need, one CPU."""

    def __init__(self, weights: str, tokenizer: str | None, share: bool, folder: str) -> None:
        """``folder``: the driver's working folder, which relative paths are from (the
        cluster was started from a neutral one, see ``connect``)."""
        with contextlib.suppress(OSError):  # a machine of the cluster without that folder
            os.chdir(folder)
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads, as the CLI does
        from lora_tui.common.native_output import redirect_native_output
        from lora_tui.engine.host import ModelHost

        redirect_native_output(os.devnull)  # the runtime's prints stay out of Ray's logs
        self.host = ModelHost(
            Path(weights), Path(tokenizer) if tokenizer else None, share, threads=1
        )
        self.infos: dict[str, AdapterInfo] = {}

    def answer(
        self, shard: Shard, settings: GenerationSettings
    ) -> tuple[AdapterInfo, list[ReplyDone]]:
        """Each prompt of the shard in a fresh conversation, as the local ``eval`` asks."""
        program = shard.program
        if program.name not in self.infos:
            self.infos[program.name] = self.host.load(program.path, program.name)
            self.host.end_checks()
        replies = []
        for _, case in shard.cases:
            self.host.clear([program.name])
            replies.append(self.host.answer(program.name, [Message("user", case.prompt)], settings))
        return self.infos[program.name], replies


def connect(address: str | None) -> Any:
    """Join the cluster at ``address``, or start a local one (None). Raises EngineError."""
    try:
        import ray
    except ImportError:
        raise EngineError(RAY_MISSING) from None
    try:
        # Ray puts the driver's working folder first on every worker's path, and a local
        # cluster's processes start in it: a neutral one, so none imports code from there.
        with working_folder(NEUTRAL_FOLDER):
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                configure_logging=True,
            )
    except ray.exceptions.AuthenticationError:
        raise EngineError(
            f"the Ray cluster at {address} wants its token: set RAY_AUTH_MODE=token, with "
            "the token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        ) from None
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EngineError(f"cannot reach the Ray cluster at {address}: {reason}") from None
    return ray


def run_sweep(
    ray: Any,
    shards: Sequence[Shard],
    settings: GenerationSettings,
    tokenizer: Path | None,
    share: bool,
    on_answers: Callable[[Shard, AdapterInfo, list[EvalResult]], None],
) -> None:
    """Every shard answered once, on actors of its foundation; ``on_answers`` gets each
    shard's answers as it comes back, in the driver's thread."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    foundations = list(dict.fromkeys(s.program.weights for s in shards))
    per_foundation = max(1, cpus // max(1, len(foundations)))
    worker = ray.remote(num_cpus=1, max_restarts=0)(SweepWorker)
    env = {"env_vars": {"OMP_NUM_THREADS": "1"}}
    queues = {w: deque(s for s in shards if s.program.weights == w) for w in foundations}
    idle: dict[Path, list[Any]] = {w: [] for w in foundations}
    started = {w: 0 for w in foundations}
    running: dict[Any, tuple[Shard, Any]] = {}
    replaced = 0

    def start_actor(weights: Path) -> Any:
        started[weights] += 1
        options = {"runtime_env": env}
        return worker.options(**options).remote(str(weights), _text(tokenizer), share, os.getcwd())

    while any(queues.values()) or running:
        for weights, queue in queues.items():
            while queue and (idle[weights] or started[weights] < per_foundation):
                actor = idle[weights].pop() if idle[weights] else start_actor(weights)
                shard = queue.popleft()
                running[actor.answer.remote(shard, settings)] = (shard, actor)
        [ref], _ = ray.wait(list(running), num_returns=1)
        shard, actor = running.pop(ref)
        weights = shard.program.weights
        try:
            info, replies = ray.get(ref)
        except ray.exceptions.RayActorError:
            replaced += 1  # the actor died (killed, or its node lost): its shard goes again
            if replaced > MAX_REPLACED_ACTORS:
                raise EngineError(f"{replaced} Ray actors died; the sweep stops") from None
            started[weights] -= 1
            queues[weights].appendleft(shard)
            continue
        except ray.exceptions.RayTaskError as err:
            raise EngineError(_task_error(err)) from None
        idle[weights].append(actor)
        results = [
            EvalResult.scored(case, shard.program.name, done, settings)
            for (_, case), done in zip(shard.cases, replies, strict=True)
        ]
        on_answers(shard, info, results)


def _task_error(err: Exception) -> str:
    """The one line an actor's own error says (a program that does not load, say)."""
    cause = getattr(err, "cause", None)
    return str(cause) if cause is not None else str(err).splitlines()[-1]


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None
