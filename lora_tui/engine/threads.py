"""The runtime's two thread pools: XNNPACK's, sized per process before any program loads,
and libtorch's OpenMP pool, held to one thread before torch is imported.

XNNPACK's pthreadpool runs the delegated operators, which are most of a decode step. libtorch's
OpenMP pool runs the engine's own tensor work (sampling the logits), microseconds a token;
at a thread per core its idle threads spin on the cores XNNPACK needs. ``OMP_NUM_THREADS``
is read once, when libgomp loads, so the CLI and the engine's worker set it before torch is
imported; a script that imports torch first can set it in its environment. Setting the pool
later with ``torch.set_num_threads(1)`` is not the same: it measured slower prefill here.
``benchmarks/threads.py`` measures these choices against each other; the README's "Threads"
section has the figures.
"""

from __future__ import annotations

import os

from lora_tui.engine.runtime import native

_sized = False  # set once a host has sized the pool; its programs keep that pool


def hold_openmp_to_one_thread() -> None:
    """Call before torch is imported. A value the user set is kept."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def available_cores() -> int:
    """The cores this process may run on (a cgroup or ``taskset`` may allow fewer)."""
    return len(os.sched_getaffinity(0))


def configure_threads(threads: int | None = None) -> int:
    """Size XNNPACK's pool to ``threads`` (default: every available core) and return its size
    as read back. Call before the first program loads: a delegate keeps the pool it was given.
    """
    portable_lib = native()

    global _sized
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    wanted = threads or available_cores()
    if portable_lib._threadpool_get_thread_count() != wanted:
        if _sized:
            # Programs loaded since hold the old pool: replacing it would leave them a
            # dangling pointer, so a second host in this process keeps the first's size.
            raise ValueError(
                f"XNNPACK's pool was already sized to "
                f"{portable_lib._threadpool_get_thread_count()} threads in this process"
            )
        portable_lib._unsafe_reset_threadpool(wanted)
    _sized = True
    return portable_lib._threadpool_get_thread_count()


def lane_layout(
    panes: int, threads: int | None = None, cores: int | None = None
) -> tuple[int, int]:
    """How many lanes (processes running programs at once) and how many threads each, for an
    app that opens with ``panes`` programs.

    XNNPACK's workers spin between operators, so two pools of a thread per core on the same
    cores slow each other down: two fp32 panes answering at once decoded less together than
    one alone. So lanes times threads never exceeds the cores, and a pool is fixed once a
    program loads. By default one pane gets one lane with every core, and several get a lane
    each (up to one per core) with their share of the cores. ``threads`` (``--threads``) sets
    each lane's pool instead, and so how many lanes fit: on two cores, 2 means one lane whose
    panes take turns with both cores, 1 means two lanes answering at once.
    """
    cores = cores or available_cores()
    if threads is not None:
        return max(1, min(panes, cores // threads)), threads
    lanes = max(1, min(panes, cores))
    return lanes, max(1, cores // lanes)


def resize_after_fork(threads: int) -> int:
    """In a process just forked from a host whose pool has one thread: give this process a
    pool of ``threads``. A one-thread pool has no worker threads, so there is nothing the
    fork left half-alive to tear down; programs the parent loaded keep the old pool's
    pointer, so this process must never run them (it loads its own)."""
    portable_lib = native()

    if portable_lib._threadpool_get_thread_count() != 1:
        raise ValueError("only a process whose pool had one thread can be resized after a fork")
    if threads != 1:
        portable_lib._unsafe_reset_threadpool(threads)
    return portable_lib._threadpool_get_thread_count()
