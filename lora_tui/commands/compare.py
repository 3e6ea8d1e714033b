"""``lora-tui [compare] --weights foundation.ptd a.pte b.pte``: the app over those programs."""

from __future__ import annotations

import argparse
import warnings
from datetime import datetime
from pathlib import Path

from rich.console import Console

from lora_tui.builds import BuildClient
from lora_tui.engine.artifacts import open_foundation
from lora_tui.format import ArtifactError
from lora_tui.results import default_results_path


def compare_main(args: argparse.Namespace) -> int:
    return run_app(
        args.weights,
        args.programs,
        tokenizer=args.tokenizer,
        log=args.log,
        share=not args.no_share,
        threads=args.threads,
        results=args.results,
    )


def run_app(
    weights: Path,
    programs: list[Path],
    *,
    tokenizer: Path | None = None,
    log: Path | None = None,
    share: bool = True,
    threads: int | None = None,
    results: Path | None = None,
    suggestions: dict[str, list[str]] | None = None,
    build: BuildClient | None = None,
) -> int:
    """Check the foundation here (one clear line if it is wrong), then run the app. With a
    ``build``, the programs are yet to be built: the app opens at once and shows it run."""
    try:
        if build is None:
            open_foundation(weights, tokenizer)
    except ArtifactError as err:
        Console(stderr=True, highlight=False).print(
            f"[red]lora-tui: error:[/] {err}", soft_wrap=True
        )
        return 1
    from lora_tui.engine.worker import process_engine_factory
    from lora_tui.ui.app import LoraTuiApp

    warnings.simplefilter("ignore")  # nothing may print over the UI
    factory = process_engine_factory(weights, tokenizer, share, log, threads, panes=len(programs))
    app = LoraTuiApp(
        list(programs),
        factory,
        suggestions=suggestions,
        results_path=results or default_results_path(datetime.now()),
        build=build,
    )
    app.run()
    return app.return_code or 0
