"""Memory a loaded program no longer needs resident: the foundation's file pages once it
has run, and heap the allocator keeps after a program is let go.

ExecuTorch's pybindings map the ``.ptd`` with ``mlock`` (``MmapDataLoader`` with
``UseMlockIgnoreErrors``, with no other choice from Python). Once a program has loaded and
run, XNNPACK has packed every delegated weight into memory of its own and the runtime has
unmapped those parts of the file; what stays mapped is what runs outside XNNPACK, above all
the token-embedding table (108 MiB at fp32 for SmolLM2-135M), of which a step reads one row
per token. Locked, all of it stays resident in every process that loaded a program. So after
each load the engine unlocks its mappings of the file and drops them from its page tables
(``MADV_DONTNEED``): the file's bytes are unchanged and stay in the page cache, and the rows
a step reads come back on first touch, as they would for any ``mmap`` (as on a phone).

A program let go (the worker's seed once its lanes are forked) frees its buffers to
malloc, which keeps what it freed inside its heap; ``trim`` hands it back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path

_libc: ctypes.CDLL | None = None


def release(file: Path) -> int:
    """Unlock this process's mappings of ``file`` and drop their pages from its page
    tables; the bytes of those mappings (0 where the system refuses, or off Linux)."""
    target = os.path.realpath(file)
    libc = _c_library()
    if libc is None:
        return 0
    released = 0
    for start, end in _mappings_of(target):
        length = end - start
        libc.munlock(ctypes.c_void_p(start), ctypes.c_size_t(length))
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), mmap.MADV_DONTNEED) == 0:
            released += length
    return released


def trim() -> None:
    """Give the heap's free pages back to the system (after a program is let go)."""
    libc = _c_library()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(ctypes.c_size_t(0))


def _mappings_of(path: str) -> list[tuple[int, int]]:
    try:
        with open("/proc/self/maps") as maps:
            lines = maps.readlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].rstrip("\n") == path:
            start, end = (int(address, 16) for address in fields[0].split("-"))
            found.append((start, end))
    return found


def _c_library() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        except OSError:
            return None
        _libc.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return _libc
