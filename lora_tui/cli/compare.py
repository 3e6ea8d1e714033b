"""``lora-tui [compare] --weights foundation.ptd a.pte b.pte [--weights ...]``: the app over
those programs, each foundation's programs over it."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.console import Console

from lora_tui.cli.options import CompareOptions
from lora_tui.common.console import print_error
from lora_tui.common.files import state_log
from lora_tui.demo.build_child import BuildClient
from lora_tui.engine.artifacts import open_foundation
from lora_tui.engine.foundations import FoundationPrograms, labelled
from lora_tui.format import ArtifactError
from lora_tui.judging.results import check_results_target, default_results_path, input_files
from lora_tui.watch.export_child import ChildExport
from lora_tui.watch.watcher import RunWatcher


def compare_main(options: CompareOptions) -> int:
    programs, runtime = options.programs, options.runtime
    watcher = None
    if (watch := options.watch) is not None:
        try:  # ~/.local/state/lora-tui, the user's own: a fixed name in /tmp was anyone's
            log = runtime.log or state_log("lora-tui-watch.log")
        except OSError as err:
            print_error(Console(stderr=True, highlight=False), "lora-tui", f"no log ({err})")
            return 1
        export = ChildExport(log)
        folder = programs.foundations[0].weights.parent
        watcher = RunWatcher(watch.run_dir, folder, watch.base, export, stop_export=export.stop)
    return run_app(
        programs.foundations,
        tokenizer=programs.tokenizer,
        log=runtime.log,
        share=runtime.share,
        threads=runtime.threads,
        results=options.results,
        base=options.base,
        watcher=watcher,
    )


def run_app(
    foundations: Sequence[FoundationPrograms],
    *,
    tokenizer: Path | None = None,
    log: Path | None = None,
    share: bool = True,
    threads: int | None = None,
    results: Path | None = None,
    base: str | None = None,
    suggestions: dict[str, list[str]] | None = None,
    build: BuildClient | None = None,
    watcher: RunWatcher | None = None,
) -> int:
    """Check each foundation here (one clear line if one is wrong), then run the app. With
    a ``build``, the programs are yet to be built: the app opens at once and shows it run."""
    try:
        if results is not None:  # never an input, never a file that holds something else
            check_results_target(results, input_files(foundations, tokenizer))
        if build is None:
            opened = [open_foundation(g.weights, tokenizer) for g in foundations]
            foundations = labelled(foundations, [f.quantization for f in opened])
        if base is not None:
            check_base(base, foundations)
    except ArtifactError as err:
        print_error(Console(stderr=True, highlight=False), "lora-tui", err)
        return 1
    from lora_tui.engine.supervisor import StartedEarly
    from lora_tui.engine.worker import foundations_engine_factory

    factory = foundations_engine_factory(foundations, tokenizer, share, log, threads)
    if build is None:  # its process starts while the UI is imported
        factory = StartedEarly(factory)
    from lora_tui.ui.app import LoraTuiApp

    warnings.simplefilter("ignore")  # nothing may print over the UI
    app = LoraTuiApp(
        [p for g in foundations for p in g.programs],
        factory,
        names={p: g.name_of(p) for g in foundations for p in g.programs},
        suggestions=suggestions,
        results_path=results or default_results_path(datetime.now()),
        build=build,
        base=base,
        watcher=watcher,
    )
    app.run()
    return app.return_code or 0


def check_base(base: str, foundations: Sequence[FoundationPrograms]) -> None:
    """``--base`` names one of the programs opened: its pane's name, its file or its path."""
    names = [(g.name_of(p), str(p), p.name, p.stem) for g in foundations for p in g.programs]
    if not any(base in ways for ways in names):
        shown = ", ".join(ways[0] for ways in names)
        raise ArtifactError(f"--base {base}: not a program opened here ({shown})")
