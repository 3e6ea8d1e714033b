"""``lora-tui eval``: a prompt set on every program, scored, as tables or one JSON object."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from lora_tui.common.native_output import native_output_to, terminal_stream
from lora_tui.engine.host import ModelHost
from lora_tui.engine.types import GenerationSettings
from lora_tui.evaluate import EvalResult, load_prompts, report_tables, run_eval
from lora_tui.format import ArtifactError
from lora_tui.results import ResultsFile


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
            host = ModelHost(
                args.weights,
                args.tokenizer,
                share=not args.no_share,
                threads=args.threads,
            )
            programs: dict[str, Path] = {}
            for program in args.programs:
                programs[host.load(program).name] = program
            host.end_checks()  # the pre-flight child is not needed any more
            if args.out:
                results_file = ResultsFile(args.out)
            with progress:
                task = progress.add_task("answering", total=len(cases) * len(programs))

                def saved(result: EvalResult) -> None:
                    if results_file is not None:
                        results_file.append(result.record(), programs[result.adapter])
                    progress.advance(task)

                report = run_eval(host, programs, cases, settings, saved)
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
