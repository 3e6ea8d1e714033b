"""The terminal side of every command: rich progress bars for long work, and failures as one
line with the traceback kept in a log. What the line quotes (a path, a manifest value) is
shown as written (``lora_tui.common.literal``)."""

from __future__ import annotations

import argparse
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from lora_tui.common.literal import literal, printable
from lora_tui.format import ArtifactError

T = TypeVar("T")


class RichEvents:
    """Progress events (a named phase of N steps, each step, the phase's end) as rich bars:
    the exporter's ``Events``, and the demo's and the evaluation's long work."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: int | None = None

    def phase(self, name: str, total: int) -> None:
        self.task = self.progress.add_task(printable(name), total=total, detail="")

    def advance(self, detail: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=1, detail=printable(detail))

    def phase_done(self) -> None:
        if self.task is not None:
            total = self.progress.tasks[self.task].total
            self.progress.update(self.task, completed=total, detail="")


def progress_display(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        # Phases and details name adapters and files: text, never markup.
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}", style="dim", markup=False),
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
        print_error(console, prog, err)
        return 1, None
    except KeyboardInterrupt:
        console.print(literal(f"{prog}: {interrupted}"))
        return 130, None
    except Exception as err:
        with log_path.open("a") as log:
            traceback.print_exc(file=log)
        detail = f"{type(err).__name__}: {err} (details in {log_path})"
        print_error(console, prog, detail, failed)
        return 1, None


def error_line(prog: str, error: object, label: str = "error") -> Text:
    """``prog: error: ...`` with the prefix in red and the error shown exactly as written,
    on one line even when it quotes a name that holds a newline."""
    return Text.assemble((f"{prog}: {label}:", "red"), " ", _one_line(error))


def print_error(console: Console, prog: str, error: object, label: str = "error") -> None:
    """Every command's failures, and nothing else, are printed so: ``error_line``, never
    wrapped."""
    console.print(error_line(prog, error, label), soft_wrap=True)


def print_warning(console: Console, prog: str, warning: object) -> None:
    """``prog: warning: ...`` on one line, the warning shown exactly as written."""
    console.print(Text.assemble(f"{prog}: warning: ", _one_line(warning)), soft_wrap=True)


def _one_line(text: object) -> Text:
    return literal(" ".join(str(text).splitlines()))


class ArgumentParser(argparse.ArgumentParser):
    """argparse's, but an error that quotes an argument (a file name) prints no control
    characters: the subcommands' parsers are of this class too."""

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        super().exit(status, printable(message) if message else message)
