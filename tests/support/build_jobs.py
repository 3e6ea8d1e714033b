"""Build jobs for ``BuildProcess`` in tests: module-level, so a spawned child imports them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lora_tui.common.lifetime import dying_with_us
from lora_tui.demo.build_child import BuildProgress, BuildReady
from lora_tui.format import ArtifactError

Send = Callable[[BuildProgress], None]


def torch_then_wait(send: Send) -> BuildReady:
    """Imports what a real build imports, says so, and then takes its time."""
    import torch  # noqa: F401

    send(BuildProgress("imported torch here", 1, 2))
    time.sleep(120)
    raise AssertionError("the app should have stopped this build")


def quick(send: Send) -> BuildReady:
    send(BuildProgress("fill nobel.pte", 0, 1))
    send(BuildProgress("fill nobel.pte", 1, 1))
    return BuildReady(Path("/demo/foundation.ptd"), (Path("/demo/nobel.pte"),), 0.1, True)


def refused(send: Send) -> BuildReady:
    raise ArtifactError("adapter.safetensors: truncated (3 of 1024 bytes)")


def killed(send: Send) -> BuildReady:
    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
    raise AssertionError("unreachable")


def crashes(send: Send) -> BuildReady:
    print("native code says goodbye", flush=True)  # goes to the log, not the terminal
    os._exit(3)


def starts_a_program_then_waits(send: Send) -> BuildReady:
    """Starts a program of its own, as the demo's build starts pip, says its pid (as the
    step) once it runs, and takes its time."""
    code = "import time; print('running', flush=True); time.sleep(600)"
    program = subprocess.Popen(
        dying_with_us([sys.executable, "-c", code]), stdout=subprocess.PIPE, text=True
    )
    program.stdout.readline()  # type: ignore[union-attr]
    send(BuildProgress("started a program", 1, 2, str(program.pid)))
    time.sleep(600)
    raise AssertionError("the app should have stopped this build")
