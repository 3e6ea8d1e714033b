"""No code from the working folder: every Python process the tool starts runs with the safe path.

People run lora-tui inside a folder they downloaded (``cd pack && lora-tui --weights
foundation.ptd *.pte``). Python puts the working folder first on a new interpreter's path
for ``-m`` and ``-c``, so a ``lora_tui/``, ``multiprocessing/``, ``pip/`` or ``torch/``
there would run in our children, the pre-flight checker included. ``PYTHONSAFEPATH=1``
(and ``-P`` on the command lines we build) stops that at each interpreter's start.

``multiprocessing``'s spawn needs more: it hands the child the parent's ``sys.path`` (with
``''`` made the folder the parent started in, ``multiprocessing.spawn.get_preparation_data``),
so a parent started with ``python -m`` from the working folder passes that folder on, and
the child would import from it what the parent never imported (torch). The path a spawned
child gets leaves the working folder out, unless our own packages come from it (a checkout
run in place, which is the user's own code).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from multiprocessing import process
from pathlib import Path

SAFE_PATH_FLAG = "-P"  # for a Python command line we build
NEUTRAL_FOLDER = os.path.abspath(os.sep)  # a working folder nobody but root can write to
_OWN_ROOT = os.path.realpath(Path(__file__).parents[2])  # where lora_tui and exporter are
_changing = threading.RLock()  # the environment and sys.path are the whole process's


def use_safe_path() -> None:
    """At a console entry point, before anything starts a child: every Python started from
    here on leaves the working folder off its path, and so does this process from now on."""
    os.environ["PYTHONSAFEPATH"] = "1"
    sys.path[:] = trusted_path(sys.path)


def trusted_path(entries: Iterable[str]) -> list[str]:
    """``entries`` without the working folder: ``''``, any relative entry, and the folder
    itself or the one this process started in, unless our own packages were imported
    from it."""
    working = {os.path.realpath(os.getcwd())}
    if process.ORIGINAL_DIR is not None:
        working.add(os.path.realpath(process.ORIGINAL_DIR))
    kept = []
    for entry in entries:
        real = os.path.realpath(entry or os.curdir)
        if real == _OWN_ROOT or (os.path.isabs(entry) and real not in working):
            kept.append(entry)
    return kept


@contextlib.contextmanager
def safe_path_for_children() -> Iterator[None]:
    """Around ``Process.start()`` of a spawn context: the new interpreter starts with the safe
    path (its first act is importing ``multiprocessing``), and the ``sys.path`` it is given
    leaves the working folder out. Both are put back after, for a caller that is a library
    user's process rather than our command."""
    with _changing:
        saved_flag, saved_path = os.environ.get("PYTHONSAFEPATH"), list(sys.path)
        os.environ["PYTHONSAFEPATH"] = "1"
        sys.path[:] = trusted_path(saved_path)
        try:
            yield
        finally:
            sys.path[:] = saved_path
            if saved_flag is None:
                del os.environ["PYTHONSAFEPATH"]
            else:
                os.environ["PYTHONSAFEPATH"] = saved_flag


@contextlib.contextmanager
def working_folder(folder: str) -> Iterator[None]:
    """``folder`` as this process's working folder while inside (for a library that puts the
    working folder on its children's paths whatever we do: Ray)."""
    with _changing:
        previous = os.getcwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(previous)
