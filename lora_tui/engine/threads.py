"""The runtime's two thread pools: XNNPACK's, sized per process before any program loads and
resized between steps while the engine's lanes take turns being busy, and libtorch's OpenMP
pool, held to one thread before torch is imported.

XNNPACK's pthreadpool runs the delegated operators, which are most of a decode step. Its
idle workers spin between operators, so two pools of a thread per core on the same cores
slow each other down: lanes answering at once must together use no more threads than there
are cores. But a delegate keeps the pool it was loaded with (replacing the pool would leave
it a dangling pointer), so the pool's *size* is fixed once a program loads. What can change
is how many of its threads take part: ``pthreadpool_set_threads_count`` (in the pthreadpool
ExecuTorch 1.5 bundles, exported by ``lib/libexecutorch_threadpool.so`` beside
``executorch::extension::threadpool::get_pthreadpool``) sets that under the pool's own
execution lock, and a worker left out sleeps instead of spinning. So by default each lane's
pool has a thread per core, and the router (``lanes.py``) tells each lane how many to use
whenever the number of lanes with work changes: every core while a lane answers alone, its
share (``thread_shares``) while several do. A lane changes it between steps, never inside
one. ``--threads N`` keeps the fixed layout instead: each lane a pool of N, used whole. A
runtime without those symbols gets the fixed layout too (``lane_layout``), and the engine
says so (``EngineReady.threads_note``).

libtorch's OpenMP pool runs the engine's own tensor work (sampling the logits), microseconds
a token; at a thread per core its idle threads spin on the cores XNNPACK needs.
``OMP_NUM_THREADS`` is read once, when libgomp loads, so the CLI and the engine's worker set
it before torch is imported; a script that imports torch first can set it in its
environment. Setting the pool later with ``torch.set_num_threads(1)`` is not the same: it
measured slower prefill here. ``benchmarks/threads.py`` measures these choices against each
other and ``benchmarks/parallel_panes.py`` the lanes' layouts; docs/benchmarks.md has the
figures.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from lora_tui.engine.runtime import native, package_dir

_sized = False  # set once a host has sized the pool; its programs keep that pool
# The process's pthreadpool and how to resize it in place, found once (None: not found).
_POOL_LIBRARY = "lib/libexecutorch_threadpool.so"
_GET_POOL = "_ZN10executorch9extension10threadpool15get_pthreadpoolEv"
_binding: _PoolBinding | None | bool = False  # False: not looked for yet


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


@dataclass(frozen=True)
class LaneLayout:
    """How an engine's lanes (processes running programs at once) use its cores."""

    lanes: int  # at most this many lanes
    pool: int  # the threads each lane's XNNPACK pool is made with
    cores: int  # the cores the lanes share
    resizing: bool  # each lane uses ``thread_shares`` of its pool, by how many are busy
    # Fixed only because this runtime's pool cannot be resized (not by ``--threads``).
    fallback: bool = False

    def shares(self, busy: int) -> list[int]:
        """The threads each of ``busy`` lanes working at once uses."""
        if not self.resizing:
            return [self.pool] * busy
        return thread_shares(self.cores, busy)

    @property
    def note(self) -> str | None:
        """What the UI says about the layout: only that it could not resize (None else)."""
        if not self.fallback:
            return None
        return (
            f"threads fixed at {self.pool} per lane: this ExecuTorch's thread pool cannot be "
            f"resized, so a pane answering alone uses {self.pool} of {self.cores} cores"
        )


def thread_shares(cores: int, busy: int) -> list[int]:
    """``cores`` split among ``busy`` lanes working at once: all of them for a lane alone,
    an even share each for several, the remainder one each to the first; at least one."""
    if busy < 1:
        return []
    share, extra = divmod(cores, busy)
    return [max(1, share + (1 if lane < extra else 0)) for lane in range(busy)]


def lane_layout(
    panes: int, threads: int | None = None, cores: int | None = None, resizable: bool = False
) -> LaneLayout:
    """How many lanes, and how many threads each, for an app that opens with ``panes``
    programs.

    By default one pane gets one lane with every core, and several get a lane each (up to one
    per core, so lanes answering at once never run more threads than there are cores). When
    the pool can be resized in place (``resizable``, see ``pool_binding``), each lane's pool
    has every core and uses its share while others answer, so a pane answering alone keeps
    every core; otherwise each lane's pool is its share, fixed. ``threads`` (``--threads``)
    fixes each lane's pool instead, and so how many lanes fit: on two cores, 2 means one lane
    whose panes take turns with both cores, 1 means two lanes answering at once.
    """
    cores = cores or available_cores()
    if threads is not None:
        return LaneLayout(max(1, min(panes, cores // threads)), threads, cores, False)
    lanes = max(1, min(panes, cores))
    if lanes == 1:
        return LaneLayout(1, cores, cores, False)
    if resizable:
        return LaneLayout(lanes, cores, cores, True)
    return LaneLayout(lanes, max(1, cores // lanes), cores, False, fallback=True)


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


# --- the pool in place ------------------------------------------------------------------------


class _PoolBinding:
    """pthreadpool's thread count on this process's XNNPACK pool, through ctypes."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._get_pool = getattr(library, _GET_POOL)
        self._get_pool.restype = ctypes.c_void_p
        self._get_pool.argtypes = []
        self._get_count = library.pthreadpool_get_threads_count
        self._get_count.restype = ctypes.c_size_t
        self._get_count.argtypes = [ctypes.c_void_p]
        self._set_count = library.pthreadpool_set_threads_count
        self._set_count.restype = ctypes.c_size_t
        self._set_count.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

    def in_use(self) -> int | None:
        # Asked afresh each time: a fork or a reset replaces the pool.
        pool = self._get_pool()
        return int(self._get_count(pool)) if pool else None

    def use(self, threads: int) -> int | None:
        pool = self._get_pool()
        return int(self._set_count(pool, threads)) if pool else None


def pool_binding() -> _PoolBinding | None:
    """The binding to the pool the pybindings' programs run on, or None when this runtime
    lacks it (another ExecuTorch build; the engine then keeps a fixed layout). Only the copy
    of the library already loaded counts (``RTLD_NOLOAD``): another copy would hold another
    pool. Looked for once per process."""
    global _binding
    if _binding is False:
        _binding = _find_binding()
    return _binding or None


def _find_binding() -> _PoolBinding | None:
    portable_lib = native()
    path = package_dir() / _POOL_LIBRARY
    try:
        library = ctypes.CDLL(str(path.resolve()), mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
        binding = _PoolBinding(library)
    except (OSError, AttributeError):  # not loaded from there, or a symbol missing
        return None
    # The pool it reaches must be the one the pybindings size.
    if binding.in_use() != portable_lib._threadpool_get_thread_count():
        return None
    return binding


def use_threads(threads: int) -> int | None:
    """Have XNNPACK's pool run the next operators on ``threads`` of its threads (at most its
    size; 0: all). Between steps only: it waits for an operator under way. Returns the count
    read back, or None without the binding."""
    binding = pool_binding()
    return binding.use(threads) if binding else None


def threads_in_use() -> int | None:
    """How many of XNNPACK's pool threads the next operator runs on (None: unknown). Reads
    the pool only when the binding has been looked for (an engine process does that first),
    so a script that never asked pays nothing."""
    return _binding.in_use() if isinstance(_binding, _PoolBinding) else None
