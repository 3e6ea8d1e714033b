"""``lora-tui eval``: a prompt set on every program, scored, as tables or one JSON object."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from lora_tui.common.native_output import native_output_to, terminal_stream
from lora_tui.engine.foundations import with_label
from lora_tui.engine.types import GenerationSettings
from lora_tui.evaluate import EvalResult, Program, load_prompts, report_tables, run_eval
from lora_tui.format import ArtifactError
from lora_tui.results import ResultsFile, origin_fields


def eval_main(args: argparse.Namespace) -> int:
    console = Console(file=terminal_stream(1), highlight=False)
    errors = Console(file=terminal_stream(2), highlight=False)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.max_new_tokens)
    results_file: ResultsFile | None = None
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=errors,
        transient=True,
    )
    try:
        cases = load_prompts(args.prompts)
        with native_output_to(args.log or Path("/dev/null")):
            from lora_tui.engine.host import open_hosts

            hosts = open_hosts(args.foundations, args.tokenizer, not args.no_share, args.threads)
            programs: dict[str, Program] = {}
            for group, host in hosts:
                for path in group.programs:
                    name = with_label(host.foundation.entry_for(path)[0], group.label)
                    info = host.load(path, name)
                    programs[info.name] = Program(host, path, group.label, info)
                host.end_checks()  # the pre-flight child is not needed any more
            if args.out:
                results_file = ResultsFile(args.out)
            with progress:
                task = progress.add_task("answering", total=len(cases) * len(programs))

                def saved(result: EvalResult) -> None:
                    if results_file is not None:
                        program = programs[result.adapter]
                        record = {**result.record(), **origin_fields(program.info)}
                        results_file.append(record, program.path)
                    progress.advance(task)

                report = run_eval(programs, cases, settings, saved)
    except ArtifactError as err:
        errors.print(f"[red]lora-tui eval: error:[/] {err}", soft_wrap=True)
        return 1
    finally:
        if results_file is not None:
            results_file.close()
    if args.json:
        console.print_json(json.dumps(report.as_json(), ensure_ascii=False))
        return 0
    for table in report_tables(report):
        console.print(table)
    return 0
