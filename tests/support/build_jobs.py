"""Build jobs for ``BuildProcess`` in tests: module-level, so a spawned child imports them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from lora_tui.builds import BuildProgress, BuildReady
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
