"""``lora-tui eval``: a prompt set on every program, scored, as tables or one JSON object;
here, or on a Ray cluster with ``--ray`` (``lora_tui/sweep.py``)."""

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

from lora_tui.common.native_output import native_output_to, terminal_stream
from lora_tui.engine.foundations import labelled, with_label
from lora_tui.engine.types import AdapterInfo, GenerationSettings
from lora_tui.evaluate import (
    EvalReport,
    EvalResult,
    Program,
    PromptCase,
    load_prompts,
    report_tables,
    run_eval,
)
from lora_tui.format import ArtifactError
from lora_tui.results import ResultsFile, answer_key, origin_fields, read_results


def eval_main(args: argparse.Namespace) -> int:
    console = Console(file=terminal_stream(1), highlight=False)
    errors = Console(file=terminal_stream(2), highlight=False)
    if args.resume and not args.out:
        errors.print("[red]lora-tui eval: error:[/] --resume needs --out RESULTS.jsonl")
        return 2
    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.max_new_tokens)
    saved: Saved | None = None
    try:
        cases = load_prompts(args.prompts)
        with native_output_to(args.log or Path("/dev/null")):
            if args.ray is not None:
                saved = Saved(args.out, args.resume, settings)
                report = _on_ray(args, cases, settings, saved, errors)
            else:
                programs = _load(args)
                saved = Saved(args.out, args.resume, settings)  # once every program loaded
                report = _here(programs, cases, settings, saved, errors)
    except ArtifactError as err:
        errors.print(f"[red]lora-tui eval: error:[/] {err}", soft_wrap=True)
        return 1
    finally:
        if saved is not None:
            saved.close()
    if args.json:
        console.print_json(json.dumps(report.as_json(), ensure_ascii=False))
        return 0
    for table in report_tables(report):
        console.print(table)
    return 0


class Saved:
    """The results file (``--out``): each new answer appended as it comes, and with
    ``--resume`` the answers it already has, by prompt, program SHA-256 and settings."""

    def __init__(self, out: Path | None, resume: bool, settings: GenerationSettings) -> None:
        self.file = ResultsFile(out) if out else None
        self.settings = asdict(settings)
        self.answered: dict[tuple, dict[str, Any]] = {}
        if resume and self.file is not None:
            records = read_results(self.file.path)
            self.answered = {answer_key(r): r for r in records if r.get("type") is None}

    def earlier(self, case: PromptCase, program: Path) -> dict[str, Any] | None:
        if not self.answered or self.file is None:
            return None
        line = {"prompt": case.prompt, "program_sha256": self.file.sha256(program)}
        return self.answered.get(answer_key({**line, "settings": self.settings}))

    def append(self, result: EvalResult, program: Path, info: AdapterInfo | None) -> None:
        if self.file is not None and not result.resumed:
            self.file.append({**result.record(), **origin_fields(info)}, program)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:.2f} answers/s" if task.speed else "", style="dim")


def _progress(errors: Console) -> Progress:
    """One bar for the whole sweep, with answers per second and the time left."""
    columns = (BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn())
    return Progress(TextColumn("{task.description}"), *columns, console=errors, transient=True)


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
    from lora_tui.sweep import (
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
