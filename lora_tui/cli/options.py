"""What the command line asked for, typed: each command's options, made once from the parsed
arguments (``main.py`` declares them) by its ``from_args``, which checks what argparse
cannot (how programs group under their foundations, ``--resume`` without ``--out``,
a program's ``@SCALE``) and raises ``ValueError`` with the one line to print. A program
asked for at a scale is made here, in the tool's cache. Nothing here loads torch."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.format import ArtifactError
from lora_tui.watch.watcher import watch_base


@dataclass(frozen=True)
class Runtime:
    """How programs run: every command that runs them takes these."""

    log: Path | None = None
    threads: int | None = None
    share: bool = True  # XNNPACK's weight cache (--no-share turns it off)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Runtime:
        return cls(args.log, args.threads, not args.no_share)


@dataclass(frozen=True)
class Programs:
    """Which programs: each foundation with the programs over it, and the tokenizer."""

    foundations: tuple[FoundationPrograms, ...]
    tokenizer: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, watching: bool = False) -> Programs:
        groups = foundation_groups(args.weights, args.programs, watching)
        return cls(tuple(groups), args.tokenizer)


def foundation_groups(
    weights: list[list[Path]], loose: list[Path], watching: bool = False
) -> list[FoundationPrograms]:
    """``--weights`` groups as given, each foundation with the programs after it; programs
    given apart belong to a lone foundation (``watching``: a run's checkpoints will add
    them, so none is needed). A ``ValueError`` says what is wrong."""
    if len(weights) > 1 and loose:
        raise ValueError(
            f"{loose[0]}: with several --weights, each foundation's programs follow it "
            "(--weights A.ptd a.pte --weights B.ptd b.pte)"
        )
    groups = []
    for index, (foundation, *programs) in enumerate(weights):
        if foundation.suffix == ".pte":
            raise ValueError(f"--weights takes the foundation (.ptd) first, not {foundation}")
        programs += loose if index == 0 else []
        if not programs and not watching:
            raise ValueError(f"--weights {foundation}: no programs over it")
        groups.append(FoundationPrograms(foundation, tuple(map(program_at_scale, programs))))
    given = [g.weights.resolve() for g in groups]
    if len(set(given)) < len(given):
        raise ValueError("a foundation is given twice: list its programs after one --weights")
    return groups


def split_scale(program: Path) -> tuple[Path, float | None]:
    """``nobel.pte@0.5``: the program and the LoRA scale asked for (None: none). A file
    whose own name has an ``@`` is that file. A ``ValueError`` says what is wrong."""
    head, at, tail = str(program).rpartition("@")
    if not at or program.exists() or "/" in tail:
        return program, None
    try:
        return Path(head), float(tail)
    except ValueError:
        raise ValueError(
            f"{program}: '{tail}' is not a scale (PROGRAM.pte@SCALE, as nobel.pte@0.5)"
        ) from None


def program_at_scale(program: Path) -> Path:
    """The program to open for ``PROGRAM.pte[@SCALE]``: at a scale, a copy with its lora_B
    scaled, made in the tool's cache now (well under a second; nothing loads torch)."""
    source, scale = split_scale(program)
    if scale is None:
        return source
    from lora_tui.engine.scaled import scaled_copy

    try:
        return scaled_copy(source, scale)
    except ArtifactError as err:
        raise ValueError(str(err)) from None


@dataclass(frozen=True)
class Watch:
    """``--watch RUN_DIR``: a training run whose checkpoints are exported into the folder
    of ``--weights`` as they come, each opened as a pane."""

    run_dir: Path
    base: Path  # what lora-export exports them from

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Watch | None:
        if args.watch is None:
            if args.watch_base is not None:
                raise ValueError("--watch-base goes with --watch RUN_DIR")
            return None
        if not args.watch.is_dir():
            why = "not a folder" if args.watch.exists() else "not found"
            raise ValueError(f"--watch {args.watch}: {why} (a training run's output folder)")
        if len(args.weights) > 1:
            raise ValueError("--watch exports into the folder of one --weights, not several")
        try:  # the folder's base, or --watch-base: one line now, not at the first checkpoint
            base = watch_base(args.weights[0][0].parent, args.watch_base)
        except ArtifactError as err:
            raise ValueError(str(err)) from None
        return cls(args.watch, base)


@dataclass(frozen=True)
class CompareOptions:
    programs: Programs
    runtime: Runtime
    results: Path | None  # --results; None: a new file in the user's data folder
    base: str | None = None  # --base: the program the others are scored against
    watch: Watch | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CompareOptions:
        watch = Watch.from_args(args)
        programs = Programs.from_args(args, watching=watch is not None)
        return cls(programs, Runtime.from_args(args), args.results, args.base, watch)


@dataclass(frozen=True)
class DemoOptions:
    quantize: tuple[str, ...]  # the demo's quantizations, each once, in order
    runtime: Runtime
    results: Path | None
    base: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        return cls(tuple(args.quantize), Runtime.from_args(args), args.results, args.base)


@dataclass(frozen=True)
class BenchOptions:
    programs: Programs
    runtime: Runtime
    prompt: str
    max_new_tokens: int
    json: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchOptions:
        programs, runtime = Programs.from_args(args), Runtime.from_args(args)
        return cls(programs, runtime, args.prompt, args.max_new_tokens, args.json)


@dataclass(frozen=True)
class EvalOptions:
    programs: Programs
    runtime: Runtime
    prompts: tuple[Path, ...]
    out: Path | None  # the results file
    resume: bool
    ray: bool  # on a Ray cluster: the one at ray_address, else a fresh local one
    ray_address: str | None
    max_new_tokens: int
    json: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EvalOptions:
        programs = Programs.from_args(args)
        if args.resume and not args.out:
            raise ValueError("--resume needs --out RESULTS.jsonl")
        return cls(
            programs,
            Runtime.from_args(args),
            tuple(args.prompts),
            args.out,
            args.resume,
            ray=args.ray is not None,
            ray_address=None if args.ray in (None, "local") else args.ray,
            max_new_tokens=args.max_new_tokens,
            json=args.json,
        )
