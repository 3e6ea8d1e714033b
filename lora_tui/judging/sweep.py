"""``lora-tui eval --ray``: the same sweep as the local ``eval``, on a Ray cluster.

The work is cut into shards, each a program and a few prompts. A Ray actor opens one
foundation (a ``ModelHost`` on one CPU, weight sharing on as the engine has it) and loads
the programs of the shards it is given, so an actor never opens a foundation it does not
need; each foundation gets its share of the cluster's CPUs in actors. The driver is the
only writer of the results file: an answer is saved when its shard comes back, so an actor
that dies loses only its shard in progress, which goes to a fresh actor, and nothing is
answered twice. ``--resume`` makes shards of what the file lacks.

The driver hashes every program before the sweep; an actor hashes the file it loaded, and
a shard whose hash differs is not saved (the file changed under the sweep). A cluster
that stops answering with no live node left (its raylet died, it went away) stops the
sweep within a minute instead of waiting for ever.

``RayBackend`` is how ``evaluate.run_eval`` runs on it: the same run as the local one, over
the same results store.

Ray is an optional extra (``pip install 'lora-tui[ray]'``) and is imported only here.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lora_tui.common.safe_path import NEUTRAL_FOLDER, working_folder
from lora_tui.engine.foundations import FoundationPrograms, labelled, with_label
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import AdapterInfo, EngineError, GenerationSettings, Message
from lora_tui.format import sha256_file
from lora_tui.judging.evaluate import Answered, EvalResult, Program, PromptCase, RunStopped

SHARD_PROMPTS = 8  # prompts per shard: what a dead actor or a killed driver loses at most
MAX_REPLACED_ACTORS = 8  # actors that died and were replaced, before the sweep gives up
RAY_MISSING = "--ray needs Ray: pip install 'lora-tui[ray]'"


@dataclass(frozen=True)
class Patience:
    """How long the driver waits on a cluster that has stopped answering."""

    poll_s: float = 2.0  # one wait for a shard, between looks at the cluster
    stall_s: float = 20.0  # no shard back for this long and no live node: the sweep stops
    query_s: float = 10.0  # a question to the cluster unanswered this long: it is gone
    get_s: float = 60.0  # fetching a shard that is ready; longer: its actor is lost
    shutdown_s: float = 15.0  # leaving the cluster; a lost one may never let go


class SweepStopped(RunStopped):
    """The sweep cannot go on (the cluster lost its nodes, actors keep dying, a program
    changed); every answer saved before stays, and ``--resume`` goes on from them."""


@dataclass(frozen=True)
class SweepProgram:
    """A program of the sweep, as the driver knows it without loading it."""

    weights: Path
    path: Path
    name: str  # its adapter name in the report ("nobel · 8da4w g32")
    sha256: str  # of the file, hashed by the driver: what its answers are recorded under


@dataclass(frozen=True)
class Shard:
    program: SweepProgram
    cases: tuple[tuple[int, PromptCase], ...]  # each with its place in the prompt set


@dataclass(frozen=True)
class ShardAnswers:
    """What an actor sends back for a shard."""

    info: AdapterInfo
    sha256: str  # of the program file the actor loaded
    replies: list[ReplyDone]


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


class RayBackend:
    """The programs on a Ray cluster's actors, as ``evaluate.run_eval`` asks them: the
    cluster at ``address``, or a fresh local one (None). The driver hashes every program
    before the sweep; an answer is saved under the hash its actor loaded, which is that."""

    def __init__(
        self,
        address: str | None,
        programs: Sequence[tuple[SweepProgram, str]],  # each with its foundation's label
        tokenizer: Path | None,
        share: bool,
        patience: Patience = Patience(),
    ) -> None:
        self.address, self.tokenizer, self.share = address, tokenizer, share
        self.sweep = [program for program, _ in programs]
        self.labels = {program.name: label for program, label in programs}
        self.patience = patience

    @classmethod
    def open(
        cls,
        address: str | None,
        foundations: Sequence[FoundationPrograms],
        tokenizer: Path | None,
        share: bool,
    ) -> RayBackend:
        """Each foundation read here (not loaded: its programs' names and its label), each
        program hashed."""
        from lora_tui.engine.artifacts import open_foundation

        opened = [open_foundation(group.weights, tokenizer) for group in foundations]
        groups = labelled(foundations, [foundation.quantization for foundation in opened])
        programs = []
        for group, foundation in zip(groups, opened, strict=True):
            for path in group.programs:
                name = with_label(foundation.entry_for(path)[0], group.label)
                programs.append(
                    (SweepProgram(group.weights, path, name, sha256_file(path)), group.label)
                )
        return cls(address, programs, tokenizer, share)

    @property
    def programs(self) -> list[Program]:
        return [Program(p.name, p.path, self.labels[p.name]) for p in self.sweep]

    def answer(
        self,
        cases: Sequence[PromptCase],
        wanted: Callable[[int, str], bool],
        settings: GenerationSettings,
        answered: Callable[[Answered], None],
    ) -> None:
        """Shards of what is ``wanted``, on the cluster; left when it is done or stopped."""
        shards = make_shards(self.sweep, cases, lambda index, program: wanted(index, program.name))
        ray = connect(self.address)

        def on_answers(shard: Shard, info: AdapterInfo, results: list[EvalResult]) -> None:
            for (index, _), result in zip(shard.cases, results, strict=True):
                answered(Answered(index, result, info, shard.program.sha256))

        try:
            run_sweep(ray, shards, settings, self.tokenizer, self.share, on_answers, self.patience)
        finally:
            disconnect(ray)


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
        self.loaded: dict[str, tuple[AdapterInfo, str]] = {}

    def answer(self, shard: Shard, settings: GenerationSettings) -> ShardAnswers:
        """Each prompt of the shard in a fresh conversation, as the local ``eval`` asks."""
        program = shard.program
        if program.name not in self.loaded:
            self.loaded[program.name] = load_hashed(self.host, program)
        replies = []
        for _, case in shard.cases:
            self.host.clear([program.name])
            replies.append(self.host.answer(program.name, [Message("user", case.prompt)], settings))
        info, sha256 = self.loaded[program.name]
        return ShardAnswers(info, sha256, replies)


def load_hashed(host: Any, program: SweepProgram) -> tuple[AdapterInfo, str]:
    """Load the program into ``host``, with the SHA-256 of the bytes it loaded: the file is
    hashed before and after the load, and one that changed in between is refused."""
    before = sha256_file(program.path)
    info = host.load(program.path, program.name)
    host.end_checks()
    if sha256_file(program.path) != before:
        raise EngineError(f"{program.path}: changed while a Ray actor loaded it")
    return info, before


def connect(address: str | None) -> Any:
    """Join the cluster at ``address``, or start a fresh local one (None): never one that
    ``$RAY_ADDRESS`` or the machine's last ``ray start`` names. Raises EngineError."""
    try:
        import ray
    except ImportError:
        raise EngineError(RAY_MISSING) from None
    where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
    try:
        # Ray puts the driver's working folder first on every worker's path, and a local
        # cluster's processes start in it: a neutral one, so none imports code from there.
        with working_folder(NEUTRAL_FOLDER):
            ray.init(
                address=address or "local",
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
        raise EngineError(f"cannot reach {where}: {reason}") from None
    return ray


def disconnect(ray: Any, patience: Patience = Patience()) -> None:
    """Leave the cluster (a local one stops); a cluster that is gone may hold this for
    ever, so it is given ``shutdown_s``."""
    _within(patience.shutdown_s, ray.shutdown)


def run_sweep(
    ray: Any,
    shards: Sequence[Shard],
    settings: GenerationSettings,
    tokenizer: Path | None,
    share: bool,
    on_answers: Callable[[Shard, AdapterInfo, list[EvalResult]], None],
    patience: Patience = Patience(),
) -> None:
    """Every shard answered once, on actors of its foundation; ``on_answers`` gets each
    shard's answers as it comes back, in the driver's thread. Raises ``SweepStopped`` when
    the cluster cannot take the work any more, ``EngineError`` for an actor's own error."""
    sweep = _Sweep(ray, shards, (str(tokenizer) if tokenizer else None, share), patience)
    last_progress = time.monotonic()
    while sweep.pending():
        sweep.submit(settings)
        ready, _ = ray.wait(list(sweep.running), num_returns=1, timeout=patience.poll_s)
        if not ready:
            stalled = time.monotonic() - last_progress >= patience.stall_s
            if stalled and not sweep.has_live_node():
                raise SweepStopped("no Ray node is left to take the work")
            continue
        answered = sweep.collect(ready[0])
        if answered is not None:
            shard, answers = answered
            results = [
                EvalResult.scored(case, shard.program.name, done, settings)
                for (_, case), done in zip(shard.cases, answers.replies, strict=True)
            ]
            on_answers(shard, answers.info, results)
            last_progress = time.monotonic()


class _Sweep:
    """The shards still to answer, the actors and what each is answering."""

    def __init__(
        self, ray: Any, shards: Sequence[Shard], opening: tuple[Any, ...], patience: Patience
    ) -> None:
        self.ray = ray
        self.opening = opening  # an actor's tokenizer and sharing, after its foundation
        self.patience = patience
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        foundations = list(dict.fromkeys(s.program.weights for s in shards))
        self.per_foundation = max(1, cpus // max(1, len(foundations)))
        self.worker = ray.remote(num_cpus=1, max_restarts=0)(SweepWorker)
        self.queues = {w: deque(s for s in shards if s.program.weights == w) for w in foundations}
        self.idle: dict[Path, list[Any]] = {w: [] for w in foundations}
        self.started = {w: 0 for w in foundations}
        self.running: dict[Any, tuple[Shard, Any]] = {}
        self.replaced = 0
        errors = ray.exceptions
        # A shard whose actor (or its node, or the object holding its answers) was lost.
        self.lost = (
            errors.RayActorError,
            errors.RaySystemError,
            errors.GetTimeoutError,
            errors.ObjectLostError,
        )

    def pending(self) -> bool:
        return any(self.queues.values()) or bool(self.running)

    def submit(self, settings: GenerationSettings) -> None:
        """A shard to every idle actor, and new actors up to each foundation's share."""
        for weights, queue in self.queues.items():
            while queue and (self.idle[weights] or self.started[weights] < self.per_foundation):
                actor = self.idle[weights].pop() if self.idle[weights] else self._start(weights)
                shard = queue.popleft()
                self.running[actor.answer.remote(shard, settings)] = (shard, actor)

    def _start(self, weights: Path) -> Any:
        self.started[weights] += 1
        options = {"runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1"}}}
        # The actor goes back to the driver's folder, where relative paths are from.
        return self.worker.options(**options).remote(str(weights), *self.opening, os.getcwd())

    def collect(self, ref: Any) -> tuple[Shard, ShardAnswers] | None:
        """A shard that came back with its answers, or None when its actor was lost (the
        shard goes again, to a new actor)."""
        shard, actor = self.running.pop(ref)
        weights = shard.program.weights
        try:
            answers = self.ray.get(ref, timeout=self.patience.get_s)
        except self.lost:
            self.replaced += 1
            if self.replaced > MAX_REPLACED_ACTORS:
                raise SweepStopped(f"{self.replaced} Ray actors died") from None
            self.started[weights] -= 1
            self.queues[weights].appendleft(shard)
            return None
        except self.ray.exceptions.RayTaskError as err:
            raise EngineError(_task_error(err)) from None
        if answers.sha256 != shard.program.sha256:
            raise SweepStopped(
                f"{shard.program.path}: changed during the sweep (a Ray actor loaded SHA-256 "
                f"{answers.sha256[:12]}…, not {shard.program.sha256[:12]}…); its answers are "
                "not saved"
            )
        self.idle[weights].append(actor)
        return shard, answers

    def has_live_node(self) -> bool:
        """Whether a live node is left (one without CPUs counts: an autoscaling cluster's
        head may have none and add workers later); a cluster that does not say within
        ``query_s`` (its control store is gone) has none."""
        nodes = _within(self.patience.query_s, self.ray.nodes) or []
        return any(node.get("Alive") for node in nodes)


def _within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result, or None when it fails or has not returned within ``seconds``
    (it is left running in a daemon thread: Ray's calls to a lost cluster can block)."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(call())
        except Exception:  # noqa: BLE001  (a lost cluster fails in many ways; all say "gone")
            pass

    thread = threading.Thread(target=run, daemon=True, name="ray-call")
    thread.start()
    thread.join(seconds)
    return result[0] if result else None


def _task_error(err: Exception) -> str:
    """The one line an actor's own error says (a program that does not load, say)."""
    cause = getattr(err, "cause", None)
    return str(cause) if cause is not None else str(err).splitlines()[-1]
