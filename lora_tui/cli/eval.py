"""``lora-tui eval``: a prompt set on every program, scored, as tables or one JSON object;
here, or on a Ray cluster with ``--ray``. The run is ``lora_tui.judging.evaluate.run_eval``
over a backend (programs loaded here, or ``judging/sweep.py``'s actors) and the results
store (``judging/store.py``); this module picks them, shows the progress and prints."""

from __future__ import annotations

from dataclasses import replace
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

from lora_tui.cli.options import EvalOptions
from lora_tui.common.console import print_error, print_warning
from lora_tui.common.native_output import native_output_to, terminal_stream
from lora_tui.engine.types import GenerationSettings
from lora_tui.format import ArtifactError
from lora_tui.judging.evaluate import (
    Backend,
    EvalReport,
    LocalBackend,
    PromptCase,
    expand_folders,
    load_prompts,
    report_tables,
    run_eval,
    step_chart,
)
from lora_tui.judging.results import check_results_target, input_files
from lora_tui.judging.store import ResultsStore

PROG = "lora-tui eval"


def eval_main(options: EvalOptions) -> int:
    console = Console(file=terminal_stream(1), highlight=False)
    errors = Console(file=terminal_stream(2), highlight=False)
    try:
        # A folder among the programs: an export folder's programs, or a run's checkpoints.
        options = replace(
            options,
            programs=replace(
                options.programs,
                foundations=tuple(expand_folders(group) for group in options.programs.foundations),
            ),
        )
        programs = options.programs
        if options.out:  # before anything is read: never an input, never a file not of results
            inputs = input_files(programs.foundations, programs.tokenizer)
            check_results_target(options.out, [*options.prompts, *inputs])
        cases = load_prompts(list(options.prompts))
        with native_output_to(options.runtime.log or Path("/dev/null")):
            report = _run(options, cases, errors)
    except ArtifactError as err:
        print_error(errors, PROG, err)
        return 1
    for note in report.notes:  # marks that may be wrong (a regex that ran out of time)
        print_warning(errors, PROG, note)
    if options.json:
        # Escaped to ASCII: a prompt's C1 controls (\x9b is CSI) must not reach the terminal.
        console.print_json(data=report.as_json(), ensure_ascii=True)
        return 0
    for table in report_tables(report):
        console.print(table)
    if (chart := step_chart(report, width=min(console.width, 100))) is not None:
        console.print(chart)
    return 0


def _run(options: EvalOptions, cases: list[PromptCase], errors: Console) -> EvalReport:
    """The set on the backend, every answer saved in ``--out`` (which is opened once every
    program loaded), with a progress bar."""
    programs, runtime = options.programs, options.runtime
    settings = GenerationSettings(temperature=0.0, max_new_tokens=options.max_new_tokens)
    backend: Backend
    if options.ray:
        from lora_tui.judging.sweep import RayBackend

        backend = RayBackend.open(
            options.ray_address, programs.foundations, programs.tokenizer, runtime.share
        )
    else:
        backend = LocalBackend.open(
            programs.foundations, programs.tokenizer, runtime.share, runtime.threads
        )
    store = ResultsStore(
        options.out,
        programs.foundations,
        programs.tokenizer,
        settings,
        resume=options.resume,
        warn=lambda text: print_warning(errors, PROG, text),
    )
    with store, _progress(errors) as progress:
        total = len(cases) * len(backend.programs)
        task = progress.add_task("answering on Ray" if options.ray else "answering", total=total)
        return run_eval(backend, cases, settings, store, lambda _: progress.advance(task))


class RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:.2f} answers/s" if task.speed else "", style="dim")


def _progress(errors: Console) -> Progress:
    """One bar for the whole sweep, with answers per second and the time left."""
    columns = (BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn())
    description = TextColumn("{task.description}", markup=False)
    return Progress(description, *columns, console=errors, transient=True)
