"""``lora-tui eval``: a prompt set on every program, scored, as tables or one JSON object;
here, or on a Ray cluster with ``--ray`` (``lora_tui/judging/sweep.py``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from lora_tui.common.console import error_line
from lora_tui.common.native_output import native_output_to, terminal_stream
from lora_tui.engine.foundations import labelled, with_label
from lora_tui.engine.types import AdapterInfo, GenerationSettings
from lora_tui.format import ArtifactError
from lora_tui.judging.evaluate import (
    EvalReport,
    EvalResult,
    Program,
    PromptCase,
    load_prompts,
    report_tables,
    run_eval,
)
from lora_tui.judging.results import (
    FINISHED,
    ResultsFile,
    answer_key,
    check_results_target,
    input_files,
    origin_fields,
    read_results,
    run_identity,
)


def eval_main(args: argparse.Namespace) -> int:
    console = Console(file=terminal_stream(1), highlight=False)
    errors = Console(file=terminal_stream(2), highlight=False)
    if args.resume and not args.out:
        errors.print(error_line("lora-tui eval", "--resume needs --out RESULTS.jsonl"))
        return 2
    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.max_new_tokens)
    saved: Saved | None = None
    try:
        if args.out:  # before anything is read: never an input, never a file not of results
            check_results_target(
                args.out, [*args.prompts, *input_files(args.foundations, args.tokenizer)]
            )
        cases = load_prompts(args.prompts)
        with native_output_to(args.log or Path("/dev/null")):
            if args.ray is not None:
                saved = Saved(args, settings, errors)
                report = _on_ray(args, cases, settings, saved, errors)
            else:
                programs = _load(args)
                saved = Saved(args, settings, errors)  # once every program loaded
                report = _here(programs, cases, settings, saved, errors)
    except ArtifactError as err:
        errors.print(error_line("lora-tui eval", err), soft_wrap=True)
        return 1
    finally:
        if saved is not None:
            saved.close()
    for note in report.notes:  # marks that may be wrong (a regex that ran out of time)
        errors.print(Text(f"lora-tui eval: warning: {note}"), soft_wrap=True)
    if args.json:
        console.print_json(json.dumps(report.as_json(), ensure_ascii=False))
        return 0
    for table in report_tables(report):
        console.print(table)
    return 0


class Saved:
    """The results file (``--out``): each new answer appended as it comes, with what it ran
    over (the SHA-256 of its program, foundation and tokenizer), and with ``--resume`` the
    answers it already has, by those, the prompt and the settings. A saved answer that
    ended in an error or was cancelled is asked again; a damaged line is skipped with a
    warning."""

    def __init__(self, args: argparse.Namespace, settings: GenerationSettings, errors: Console):
        self.file = ResultsFile(args.out) if args.out else None
        self.settings = asdict(settings)
        self.tokenizer: Path | None = args.tokenizer
        self.foundation_of = {p: g.weights for g in args.foundations for p in g.programs}
        self.identities: dict[Path, dict[str, str]] = {}  # foundation -> run_identity
        self.answered: dict[tuple, dict[str, Any]] = {}
        if args.resume and self.file is not None:

            def warn(text: str) -> None:
                errors.print(f"lora-tui eval: warning: {text}", markup=False, soft_wrap=True)

            records = read_results(self.file.path, warn)
            finished = [r for r in records if r.get("type") is None and r["end"] in FINISHED]
            self.answered = {answer_key(r): r for r in finished}

    def identity(self, program: Path) -> dict[str, str]:
        """The SHA-256 of the program's foundation and tokenizer, hashed once per run."""
        weights = self.foundation_of[program]
        if weights not in self.identities:
            self.identities[weights] = run_identity(weights, self.tokenizer)
        return self.identities[weights]

    def earlier(self, case: PromptCase, program: Path) -> dict[str, Any] | None:
        if not self.answered or self.file is None:
            return None
        line = {"prompt": case.prompt, "program_sha256": self.file.sha256(program)}
        return self.answered.get(
            answer_key({**line, **self.identity(program), "settings": self.settings})
        )

    def append(self, result: EvalResult, program: Path, info: AdapterInfo | None) -> None:
        if self.file is not None and not result.resumed:
            record = {**result.record(), **origin_fields(info), **self.identity(program)}
            self.file.append(record, program)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:.2f} answers/s" if task.speed else "", style="dim")


def _progress(errors: Console) -> Progress:
    """One bar for the whole sweep, with answers per second and the time left."""
    columns = (BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn())
    description = TextColumn("{task.description}", markup=False)
    return Progress(description, *columns, console=errors, transient=True)


def _load(args: argparse.Namespace) -> dict[str, Program]:
    """Every program over its foundation, a host per foundation, named with its label."""
    from lora_tui.engine.host import open_hosts

    hosts = open_hosts(args.foundations, args.tokenizer, not args.no_share, args.threads)
    programs: dict[str, Program] = {}
    for group, host in hosts:
        for path in group.programs:
            name = with_label(host.foundation.entry_for(path)[0], group.label)
            info = host.load(path, name)
            programs[info.name] = Program(host, path, group.label, info)
        host.end_checks()  # the pre-flight child is not needed any more
    return programs


def _here(
    programs: dict[str, Program],
    cases: list[PromptCase],
    settings: GenerationSettings,
    saved: Saved,
    errors: Console,
) -> EvalReport:
    """The set on the programs loaded in this process."""
    with _progress(errors) as progress:
        task = progress.add_task("answering", total=len(cases) * len(programs))

        def answered(result: EvalResult) -> None:
            program = programs[result.adapter]
            saved.append(result, program.path, program.info)
            progress.advance(task)

        def earlier(case: PromptCase, adapter: str) -> dict[str, Any] | None:
            return saved.earlier(case, programs[adapter].path)

        return run_eval(programs, cases, settings, answered, earlier)


def _on_ray(
    args: argparse.Namespace,
    cases: list[PromptCase],
    settings: GenerationSettings,
    saved: Saved,
    errors: Console,
) -> EvalReport:
    """The set on a Ray cluster's actors; the report as the local run would give it."""
    from lora_tui.engine.artifacts import open_foundation
    from lora_tui.format import sha256_file
    from lora_tui.judging.sweep import (
        SweepProgram,
        SweepStopped,
        connect,
        disconnect,
        make_shards,
        run_sweep,
    )

    opened = [open_foundation(g.weights, args.tokenizer) for g in args.foundations]
    groups = labelled(args.foundations, [f.quantization for f in opened])
    # Hashed through the results file, so the hash its lines record is the one every
    # actor's program is held to.
    sha256 = saved.file.sha256 if saved.file is not None else sha256_file
    programs = [
        SweepProgram(g.weights, path, with_label(f.entry_for(path)[0], g.label), sha256(path))
        for g, f in zip(groups, opened, strict=True)
        for path in g.programs
    ]
    labels = {p.name: g.label for g in groups for p in programs if p.weights == g.weights}
    found: dict[tuple[int, str], EvalResult] = {}
    for index, case in enumerate(cases):
        for program in programs:
            if (record := saved.earlier(case, program.path)) is not None:
                found[index, program.name] = EvalResult.from_record(
                    case, program.name, record, settings
                )
    shards = make_shards(programs, cases, lambda i, p: (i, p.name) not in found)
    ray = connect(None if args.ray == "local" else args.ray)
    total = len(cases) * len(programs)
    with _progress(errors) as progress:
        task = progress.add_task("answering on Ray", total=total)
        progress.advance(task, len(found))

        def answered(shard: Any, info: AdapterInfo, results: list[EvalResult]) -> None:
            for (index, _), result in zip(shard.cases, results, strict=True):
                saved.append(result, shard.program.path, info)
                found[index, result.adapter] = result
                progress.advance(task)

        try:
            run_sweep(ray, shards, settings, args.tokenizer, not args.no_share, answered)
        except SweepStopped as err:
            raise SweepStopped(f"{err}; {_kept(args.out, len(found), total)}") from None
        finally:
            disconnect(ray)
    names = [p.name for p in programs]
    report = EvalReport(names, labels=labels)
    report.results = [found[i, n] for i in range(len(cases)) for n in names]
    return report


def _kept(out: Path | None, answered: int, total: int) -> str:
    """What a stopped sweep leaves: how many answers are saved, and how to go on."""
    if out is None:
        return f"{answered} of {total} answers were given, none saved (no --out)"
    return f"{answered} of {total} answers are saved in {out}; --resume goes on from there"
