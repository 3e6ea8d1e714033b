"""A file the runtime mapped and locked (as ExecuTorch's pybindings map the foundation) is
unlocked and dropped from this process's page tables, and reads the same afterwards."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

from lora_tui.engine.memory import parse_smaps
from lora_tui.engine.pages import release

SIZE = 32 * 2**20


def resident_kib(path: Path) -> int:
    with open("/proc/self/smaps") as smaps:
        mappings = parse_smaps(smaps.read())
    return sum(m.rss_kib for m in mappings if m.path == os.path.realpath(path))


def test_a_locked_mapping_is_released_and_reads_the_same(tmp_path: Path) -> None:
    weights = tmp_path / "foundation.ptd"
    weights.write_bytes(bytes(range(256)) * (SIZE // 256))
    with open(weights, "rb") as file:
        mapped = mmap.mmap(file.fileno(), SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
    # Locked, as the runtime locks it (where the limit on locked memory allows).
    with open("/proc/self/maps") as maps:
        line = next(line for line in maps if line.rstrip("\n").endswith(os.path.realpath(weights)))
    start = int(line.split("-")[0], 16)
    libc = ctypes.CDLL(None)
    libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mlock(ctypes.c_void_p(start), ctypes.c_size_t(SIZE))
    before = bytes(mapped[:4096]) + bytes(mapped[-4096:])
    sum(mapped[i] for i in range(0, SIZE, 4096))  # every page resident
    assert resident_kib(weights) == SIZE // 1024

    assert release(weights) == SIZE
    assert resident_kib(weights) == 0
    assert bytes(mapped[:4096]) + bytes(mapped[-4096:]) == before  # read back on touch
    # Only what was read comes back (with what the kernel maps around a fault: up to a
    # large folio of the page cache each).
    assert 0 < resident_kib(weights) <= SIZE // 1024 // 4
    assert release(tmp_path / "elsewhere.ptd") == 0  # a file this process does not map
    mapped.close()
