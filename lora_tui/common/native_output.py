"""Keep what native code writes (ExecuTorch logs, torchao load errors) off the terminal.

Native libraries write to file descriptors 1 and 2 directly, past ``sys.stdout``; only
``dup2`` at the descriptor level catches them.
"""

from __future__ import annotations

import contextlib
import multiprocessing.process
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from lora_tui.common.lifetime import start_child


def terminal_stream(fd: int = 2) -> TextIO:
    """A private copy of a terminal descriptor that stays on the terminal after redirection."""
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")


@contextlib.contextmanager
def native_output_to(log_path: Path) -> Iterator[None]:
    """Send descriptors 1 and 2 (and Python's sys.stdout/err) to ``log_path`` while inside."""
    sys.stdout.flush()
    sys.stderr.flush()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def start_quietly(process: multiprocessing.process.BaseProcess) -> None:
    """Start a child process from a UI. Under one, sys.stdout and sys.stderr may have no
    real descriptor, and multiprocessing hands sys.stderr's to its helper processes: they
    get /dev/null instead. Started on a thread that lasts as long as this process, since a
    child of ours dies with the thread that started it (``lifetime.start_child``)."""

    def start() -> None:
        with (
            open(os.devnull, "w") as quiet,
            contextlib.redirect_stderr(quiet),
            contextlib.redirect_stdout(quiet),
        ):
            process.start()

    start_child(start)


def redirect_native_output(log_path: str | Path) -> None:
    """Point descriptors 1 and 2 at the log for good, in a child process that never draws
    anything (the engine's worker, the pre-flight checker)."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
