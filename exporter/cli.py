"""``lora-export``: a base and PEFT adapters in; foundation.ptd and one .pte per adapter out."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import warnings
from importlib.metadata import version
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from exporter.pipeline import (
    DEFAULT_MAX_CONTEXT,
    WATCH_SECONDS,
    ExportRequest,
    ExportResult,
    parse_adapter_arg,
    run_export,
    watch_export,
)
from lora_tui.common.console import (
    ArgumentParser,
    RichEvents,
    print_error,
    progress_display,
    report_failures,
)
from lora_tui.common.files import state_log
from lora_tui.common.literal import literal
from lora_tui.common.native_output import native_output_to, terminal_stream
from lora_tui.common.safe_path import use_safe_path
from lora_tui.format import (
    DEFAULT_GROUP_SIZE,
    MAX_SCALE,
    MIN_SCALE,
    QUANTIZE_MODES,
    ArtifactError,
    Quantization,
    scale_label,
)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="lora-export",
        description="Export LoRA adapters as small ExecuTorch programs over one shared "
        "foundation weight file.",
    )
    parser.add_argument(
        "--base",
        required=True,
        type=Path,
        help="a Hugging Face model folder or a .gguf file: Llama 2/3.x, Qwen2/2.5 or Qwen3",
    )
    parser.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="[NAME=]ADAPTER_DIR",
        help="PEFT adapter directory (repeatable); NAME defaults to its name. A training "
        "run's folder of checkpoint-N/ adapters exports one program per complete checkpoint, "
        "NAME-stepN",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--base-program",
        action="store_true",
        help="also write base.pte, the base model with no adapter",
    )
    parser.add_argument(
        "--max-context",
        type=int,
        default=DEFAULT_MAX_CONTEXT,
        metavar="N",
        help=f"KV-cache length in tokens (default {DEFAULT_MAX_CONTEXT})",
    )
    _add_weight_options(parser)
    parser.add_argument(
        "--watch",
        action="store_true",
        help="after exporting, keep watching the adapter folders and export each checkpoint "
        f"a training run completes, every {WATCH_SECONDS:g} s, until Ctrl+C; the base is "
        "read once",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show ExecuTorch's own logs and warnings"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('lora-tui')}")
    return parser


def _add_weight_options(parser: argparse.ArgumentParser) -> None:
    """How the programs' weights are stored and at what LoRA strength."""
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default="none",
        help="none: fp32 weights. 8da4w: linear weights int4 (int8 dynamic activations) and "
        "embeddings int8, as ExecuTorch's LoRA demo ships. 8da8w: the same with int8 linear "
        "weights, a quarter of fp32's size. LoRA weights stay fp32. Every program in a folder "
        "shares the foundation's quantization",
    )
    parser.add_argument(
        "--group-size",
        type=int,
        metavar="N",
        help=f"8da4w: input columns per int4 scale (default {DEFAULT_GROUP_SIZE}, at least 32); "
        "8da8w has one scale per output channel",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="S",
        help=f"write each adapter at this strength: its lora_B times S ({MIN_SCALE:g} to "
        f"{MAX_SCALE:g}; 0 is the base, 1 the adapter as trained). The program keeps the "
        "adapter's name and its manifest entry records the scale; give NAME=DIR to keep "
        "several strengths of one adapter in a folder",
    )


def size_table(result: ExportResult) -> Table:
    manifest = result.manifest
    table = Table()
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("adapter safetensors", justify="right")
    table.add_column("note")
    table.add_row(
        literal(manifest.foundation_file),
        _mib(manifest.foundation_size_bytes),
        "",
        "shared base weights" + (" (kept)" if result.reused_foundation else ""),
    )
    for name, entry in manifest.programs.items():
        note = "built now" if name in result.built else "kept"
        if entry.scale is not None:
            note += f", {scale_label(entry.scale)}"
        adapter = _mib(entry.adapter_size_bytes) if entry.adapter_size_bytes else "—"
        table.add_row(literal(entry.file), _mib(entry.size_bytes), adapter, note)
    return table


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def main(argv: list[str] | None = None) -> int:
    use_safe_path()  # before any child starts: none imports from the working folder
    args = build_parser().parse_args(argv)
    # The terminal is ours alone: native and Python noise goes to a log file unless --verbose.
    console = Console(file=sys.stderr if args.verbose else terminal_stream(2), highlight=False)
    try:  # ~/.local/state/lora-tui, the user's own: a fixed name in /tmp was anyone's
        log_path = state_log("lora-export.log", fresh=not args.verbose)
    except OSError as err:
        print_error(console, "lora-export", f"no folder for its log ({err})")
        return 1

    def export() -> ExportResult | None:
        request = ExportRequest(
            base=args.base,
            adapters=[parse_adapter_arg(value) for value in args.adapter],
            out=args.out,
            base_program=args.base_program,
            max_context=args.max_context,
            quantization=Quantization.named(args.quantize, args.group_size),
            scale=args.scale,
        )
        progress = progress_display(console)
        events = RichEvents(progress)
        with progress, contextlib.ExitStack() as quiet:
            if not args.verbose:
                quiet.enter_context(warnings.catch_warnings())
                quiet.enter_context(native_output_to(log_path))
                warnings.simplefilter("ignore")
            if args.watch:
                _watch(request, events, progress, console)
                return None
            return run_export(request, events)

    code, result = report_failures(
        export, console, "lora-export", log_path, "interrupted; the output folder is unchanged"
    )
    if result is not None:
        print_summary(console, result, args.out)
    return code


def print_summary(console: Console, result: ExportResult, out: Path) -> None:
    # The folder on a line of its own: a table's title wraps at the table's width.
    console.print(literal(f"Artifacts in {out}"), soft_wrap=True)
    console.print(size_table(result))
    for phase, seconds in result.phase_seconds.items():
        console.print(literal(f"{phase}: {seconds:.1f} s", "dim"))  # "fill NAME.pte": text
    for note in result.notes:  # a run's checkpoints not complete yet: done next time
        console.print(literal(f"note: {note}", "dim"), soft_wrap=True)
    print_warnings(console, result)


def print_warnings(console: Console, result: ExportResult) -> None:
    for name, warning in result.warnings.items():  # names and target names are text
        console.print(literal(f"warning: {name}: {warning}", "yellow"), soft_wrap=True)


def _watch(
    request: ExportRequest, events: RichEvents, progress: Progress, console: Console
) -> None:
    """The export, its summary, then a line for each checkpoint exported as training
    writes it, until Ctrl+C. A later export's error is a line, and the watch goes on.

    Once watching, Ctrl+C stops after the export under way, if any, instead of raising
    KeyboardInterrupt wherever the main thread is (inside torch or ExecuTorch's native
    code, the process sometimes took over a minute to end); a second Ctrl+C stops at once,
    and the output folder is unchanged by an export cut short either way."""
    noted: set[str] = set()
    watching = False
    stop = threading.Event()

    def stop_watching(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    def exported(result: ExportResult) -> None:
        nonlocal watching
        for task in progress.task_ids:  # each run's bars go once it is done (hidden:
            progress.update(task, visible=False)  # RichEvents finds tasks by index)
        if not watching:
            print_summary(console, result, request.out)
            noted.update(result.notes)
            console.print(literal("watching for new checkpoints (Ctrl+C stops)", "dim"))
            watching = True
            signal.signal(signal.SIGINT, stop_watching)
            return
        for name in result.built:
            seconds = result.phase_seconds.get(f"fill {name}.pte")
            took = f" (fill {seconds:.1f} s)" if seconds is not None else ""
            console.print(literal(f"exported {name}.pte{took}"), soft_wrap=True)
        for note in result.notes:
            if note not in noted:
                console.print(literal(f"note: {note}", "dim"), soft_wrap=True)
        noted.update(result.notes)
        print_warnings(console, result)

    def failed(error: ArtifactError) -> None:
        print_error(console, "lora-export", error)

    interrupt = signal.getsignal(signal.SIGINT)
    try:
        watch_export(request, exported, failed, stop, events=events)
    except KeyboardInterrupt:
        if not watching:
            raise  # the first export was interrupted: the folder is unchanged
    finally:
        signal.signal(signal.SIGINT, interrupt)
    console.print(literal("lora-export: stopped watching"))


if __name__ == "__main__":
    sys.exit(main())
