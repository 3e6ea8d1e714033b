"""The terminal side of every command: rich progress bars for long work, and failures as one
line with the traceback kept in a log."""

from __future__ import annotations

import traceback
from collections.abc import Callable
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

from lora_tui.format import ArtifactError

T = TypeVar("T")


class RichEvents:
    """Progress events (a named phase of N steps, each step, the phase's end) as rich bars:
    the exporter's ``Events``, and the demo's and the evaluation's long work."""

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
