"""``lora-export``: a base and PEFT adapters in; foundation.ptd and one .pte per adapter out."""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from exporter.native_output import native_output_to, terminal_stream
from exporter.pipeline import (
    DEFAULT_MAX_CONTEXT,
    ExportRequest,
    ExportResult,
    parse_adapter_arg,
    run_export,
)
from lora_tui.artifact_format import (
    DEFAULT_GROUP_SIZE,
    FP32,
    QUANTIZE_MODES,
    ArtifactError,
    Quantization,
)

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        help="PEFT adapter directory (repeatable); NAME defaults to its name",
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
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default="none",
        help="none: fp32 weights. 8da4w: linear weights int4 (int8 dynamic activations) and "
        "embeddings int8, as ExecuTorch's LoRA demo ships; LoRA weights stay fp32. Every "
        "program in a folder shares the foundation's quantization",
    )
    parser.add_argument(
        "--group-size",
        type=int,
        default=DEFAULT_GROUP_SIZE,
        metavar="N",
        help=f"8da4w: input columns per int4 scale (default {DEFAULT_GROUP_SIZE}, at least 32)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show ExecuTorch's own logs and warnings"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('lora-tui')}")
    return parser


class RichEvents:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: int | None = None

    def phase(self, name: str, total: int) -> None:
        self.task = self.progress.add_task(name, total=total, detail="")

    def advance(self, detail: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=1, detail=detail)

    def phase_done(self) -> None:
        if self.task is not None:
            total = self.progress.tasks[self.task].total
            self.progress.update(self.task, completed=total, detail="")


def progress_display(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[detail]}"),
        console=console,
        transient=True,  # the summary that follows replaces it; an error stays one line
    )


def size_table(result: ExportResult, out: Path) -> Table:
    manifest = result.manifest
    table = Table(title=f"Artifacts in {out}", title_justify="left")
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("adapter safetensors", justify="right")
    table.add_column("note")
    table.add_row(
        manifest.foundation_file,
        _mib(manifest.foundation_size_bytes),
        "",
        "shared base weights" + (" (kept)" if result.reused_foundation else ""),
    )
    for name, entry in manifest.programs.items():
        note = "built now" if name in result.built else "kept"
        adapter = _mib(entry.adapter_size_bytes) if entry.adapter_size_bytes else "—"
        table.add_row(entry.file, _mib(entry.size_bytes), adapter, note)
    return table


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def report_failures(
    work: Callable[[], T],
    console: Console,
    prog: str,
    log_path: Path,
    interrupted: str,
    failed: str = "internal error",
) -> tuple[int, T | None]:
    """Run ``work``; each way it can fail becomes one line on ``console`` and an exit code.

    An unexpected failure's traceback goes to ``log_path``, never to the terminal.
    """
    try:
        return 0, work()
    except ArtifactError as err:
        console.print(f"[red]{prog}: error:[/] {err}", soft_wrap=True)
        return 1, None
    except KeyboardInterrupt:
        console.print(f"{prog}: {interrupted}")
        return 130, None
    except Exception as err:
        with log_path.open("a") as log:
            traceback.print_exc(file=log)
        console.print(
            f"[red]{prog}: {failed}:[/] {type(err).__name__}: {err} (details in {log_path})",
            soft_wrap=True,
        )
        return 1, None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The terminal is ours alone: native and Python noise goes to a log file unless --verbose.
    console = Console(file=sys.stderr if args.verbose else terminal_stream(2), highlight=False)
    log_path = Path(tempfile.gettempdir()) / "lora-export.log"

    def export() -> ExportResult:
        request = ExportRequest(
            base=args.base,
            adapters=[parse_adapter_arg(value) for value in args.adapter],
            out=args.out,
            base_program=args.base_program,
            max_context=args.max_context,
            quantization=(
                FP32 if args.quantize == "none" else Quantization(args.quantize, args.group_size)
            ),
        )
        progress = progress_display(console)
        events = RichEvents(progress)
        with progress:
            if args.verbose:
                return run_export(request, events)
            log_path.write_text("")
            with warnings.catch_warnings(), native_output_to(log_path):
                warnings.simplefilter("ignore")
                return run_export(request, events)

    code, result = report_failures(
        export, console, "lora-export", log_path, "interrupted; the output folder is unchanged"
    )
    if result is None:
        return code
    console.print(size_table(result, args.out))
    for phase, seconds in result.phase_seconds.items():
        console.print(f"[dim]{phase}: {seconds:.1f} s[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
