"""Child processes that end with the process that started them, however it ends.

A child stuck in native code reads no pipe and runs no handler, so nothing it could do
itself ends it when the app is killed (SIGKILL, the OOM killer). Linux can:
``PR_SET_PDEATHSIG`` asks the kernel to send a signal when the parent goes, and SIGKILL
needs no cooperation. Each process of ours sets it for itself (``die_with_parent``): it is
cleared by ``fork`` (a lane sets its own) and kept across ``exec`` (so a program we do not
control gets it from a small trampoline, ``dying_with_us``).

The kernel's "parent" is the *thread* that started the child, so children are started on a
thread that lasts as long as the process (``start_child``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

T = TypeVar("T")

_launcher: ThreadPoolExecutor | None = None
_launcher_lock = threading.Lock()

# Sets the parent-death signal, checks the parent has not gone already, then becomes the
# command: run with -I -S, so it imports nothing but the standard library.
_TRAMPOLINE = (
    "import ctypes, os, sys;"
    f"ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}, 0, 0, 0);"
    "os.getppid() == int(sys.argv[1]) or os._exit(1);"
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` (its parent's pid, as that
    parent saw it) ends. If it ended already, before this call, this process ends now."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # adopted: the parent went before the signal was set
        os._exit(1)


def dying_with_us(command: list[str]) -> list[str]:
    """``command`` run so that it is killed when this process ends (for a program that is
    not ours, which cannot call ``die_with_parent`` itself)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), *command]


def start_child(start: Callable[[], T]) -> T:
    """Call ``start`` (which starts a child process) on a thread that lives as long as this
    process: the main thread, or one kept for it. A child started on a short-lived thread
    (a Textual thread worker) would be killed when that thread ends."""
    global _launcher
    if threading.current_thread() is threading.main_thread():
        return start()
    with _launcher_lock:
        if _launcher is None:
            _launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="child-launcher")
    return _launcher.submit(start).result()
