"""The whole tool's memory by what holds it (engine/memory.py), from smaps texts written here:
each mapping's RSS and PSS go to one part, and the parts add up to every mapping's."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lora_tui.engine.memory import (
    PACKING,
    Holding,
    ProcessMaps,
    Role,
    Share,
    ToolLayout,
    added,
    anonymous_ranges,
    attribute,
    measure_tool,
    parse_smaps,
    read_tool,
    sample,
)

MIB = 2**20
WORKER, LANE_A, LANE_B, APP, CHECKER = 200, 201, 202, 100, 300


def entry(
    start_mib: int, size_mib: int, path: str = "", rss: float = -1, pss: float = -1, private=0.0
) -> str:
    """One smaps entry at ``start_mib`` MiB into the address space; figures in MiB (RSS
    defaults to the whole mapping, PSS to RSS)."""
    rss = size_mib if rss < 0 else rss
    pss = rss if pss < 0 else pss
    start, end = start_mib * MIB, (start_mib + size_mib) * MIB
    kib = lambda mib: f"{round(mib * 1024)} kB"  # noqa: E731
    return "\n".join(
        [
            f"{start:x}-{end:x} rw-p 00000000 00:00 0                  {path}".rstrip(),
            f"Size:             {kib(size_mib)}",
            "KernelPageSize:        4 kB",
            f"Rss:              {kib(rss)}",
            f"Pss:              {kib(pss)}",
            "Pss_Dirty:             0 kB",
            "Shared_Clean:          0 kB",
            "Shared_Dirty:          0 kB",
            "Private_Clean:         0 kB",
            f"Private_Dirty:    {kib(private)}",
            "Referenced:            0 kB",
            "Anonymous:             0 kB",
            "Locked:                0 kB",
            "VmFlags: rd wr mr mw me ac",
        ]
    )


def smaps(*entries: str) -> tuple:
    return tuple(parse_smaps("\n".join(entries) + "\n"))


def span(start_mib: int, size_mib: int) -> tuple[int, int]:
    return (start_mib * MIB, (start_mib + size_mib) * MIB)


LIBTORCH = "/venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so"
PTD = "/home/u/.cache/lora-tui/demo-v5/foundation.ptd"
PACKED_DIR = "/home/u/.cache/lora-tui/packed"


def engine() -> tuple[list[ProcessMaps], ToolLayout]:
    """A worker that packed the foundation at 1000-1400 MiB, and two lanes forked from it,
    sharing those pages three ways. Lane A loaded nobel (1600-1700) and then made 50 MiB of
    its own (a scorer's copy, say); lane B loaded executorch (1600-1700, its own address
    space) and maps the packed weights from a file as well."""
    worker = smaps(
        entry(10, 30, LIBTORCH, rss=30, pss=10),
        entry(100, 40, "[heap]", pss=20),
        entry(1000, 400, pss=400 / 3),
        entry(2000, 108, PTD, pss=108 / 3),
        entry(3000, 1, "[stack]"),
    )
    lane_a = smaps(
        entry(10, 30, LIBTORCH, rss=30, pss=10),
        entry(100, 50, "[heap]", pss=30, private=10),
        entry(1000, 400, pss=400 / 3),
        entry(1600, 100, pss=100, private=100),
        entry(1800, 50, pss=50, private=50),
        entry(2000, 108, PTD, pss=108 / 3),
    )
    lane_b = smaps(
        entry(10, 30, LIBTORCH, rss=30, pss=10),
        entry(100, 40, "[heap]", pss=20),
        entry(1000, 400, pss=400 / 3),
        entry(1600, 100, pss=100, private=100),
        entry(2000, 108, PTD, pss=108 / 3),
        entry(4000, 60, f"{PACKED_DIR}/abc.bin", pss=60),
    )
    processes = [
        ProcessMaps(WORKER, Role.WORKER, worker),
        ProcessMaps(LANE_A, Role.LANE, lane_a, worker=WORKER),
        ProcessMaps(LANE_B, Role.LANE, lane_b, worker=WORKER),
    ]
    layout = ToolLayout(
        holdings=(
            Holding(PACKING, WORKER, (span(1000, 400),)),
            Holding("nobel", LANE_A, (span(1600, 100),)),
            Holding("executorch", LANE_B, (span(1600, 100),)),
        ),
        packed_dir=PACKED_DIR,
    )
    return processes, layout


def total(processes: list[ProcessMaps]) -> Share:
    mappings = [m for p in processes for m in p.mappings]
    return Share(sum(m.rss_kib for m in mappings) / 1024, sum(m.pss_kib for m in mappings) / 1024)


def close(a: Share, b: Share) -> bool:
    return a.rss_mib == pytest.approx(b.rss_mib, abs=0.01) and a.pss_mib == pytest.approx(
        b.pss_mib, abs=0.01
    )


def test_smaps_entries_are_read_with_their_path_and_figures() -> None:
    mappings = smaps(entry(10, 30, LIBTORCH, rss=12, pss=4), entry(100, 40, "[heap]", private=8))
    torch, heap = mappings
    assert (torch.path, torch.rss_kib, torch.pss_kib, torch.file) == (LIBTORCH, 12288, 4096, True)
    assert (heap.start, heap.end) == span(100, 40)
    assert heap.anonymous and not heap.file and heap.private_kib == 8192
    assert smaps(entry(5, 1))[0].path == "" and smaps(entry(5, 1))[0].anonymous


def test_each_part_holds_what_the_layout_says_and_the_parts_add_up() -> None:
    processes, layout = engine()
    tool = attribute(processes, layout)
    assert close(tool.total, total(processes))
    assert tool.processes == 3
    # The foundation's file pages, mapped in each process, count once in PSS.
    assert close(tool.foundation_file, Share(3 * 108, 108))
    # The worker's packing, inherited by both lanes, and the file lane B maps.
    assert close(tool.packed_weights, Share(3 * 400 + 60, 400 + 60))
    assert close(tool.adapter("nobel") or Share(), Share(100, 100))
    assert close(tool.adapter("executorch") or Share(), Share(100, 100))
    assert [name for name, _ in tool.adapters] == ["nobel", "executorch"]
    # What lane A made that no load claimed is its programs' memory; its heap is runtime.
    assert close(tool.other_programs, Share(50, 50))
    assert close(tool.runtime, Share(3 * 30 + 40 + 50 + 40 + 1, 3 * 10 + 20 + 30 + 20 + 1))
    # The runtime by what it is: torch's library, and the heaps (and the worker's stack).
    runtime = dict(tool.runtime_parts)
    assert set(runtime) == {"torch", "heaps"}
    assert close(runtime["torch"], Share(90, 30))
    assert close(runtime["torch"] + runtime["heaps"], tool.runtime)
    assert tool.app == Share() and tool.helpers == Share()


def test_the_app_and_helpers_are_whole_processes() -> None:
    processes, layout = engine()
    app = ProcessMaps(APP, Role.APP, smaps(entry(10, 30, LIBTORCH, pss=5), entry(100, 20)))
    checker = ProcessMaps(CHECKER, Role.HELPER, smaps(entry(1000, 400), entry(2000, 108, PTD)))
    tool = attribute([app, *processes, checker], layout)
    assert close(tool.app, Share(50, 25))
    # A checker's load is not the engine's: its foundation pages and packing are its own.
    assert close(tool.helpers, Share(508, 508))
    assert close(tool.foundation_file, Share(3 * 108, 108))
    assert close(tool.total, total([app, *processes, checker]))
    assert tool.processes == 5


def test_a_mapping_partly_held_is_split_by_its_addresses() -> None:
    # The heap grew by 10 MiB while nobel loaded: that tenth of it is nobel's.
    lane = ProcessMaps(LANE_A, Role.LANE, smaps(entry(100, 100, "[heap]", pss=50)), WORKER)
    layout = ToolLayout((Holding("nobel", LANE_A, (span(190, 10),)),))
    tool = attribute([lane], layout)
    assert close(tool.adapter("nobel") or Share(), Share(10, 5))
    assert close(tool.runtime, Share(90, 45))


def test_what_a_load_allocated_inside_the_heap_is_its_up_to_what_only_the_lane_maps() -> None:
    # Nobel's load took 20 MiB of heap the lane had free (no new addresses), and 40 MiB
    # more than only this lane's heap pages could hold; both lanes' heaps are 30 MiB private.
    layout = ToolLayout(
        (
            Holding("nobel", LANE_A, (span(1600, 100),), heap_kib=20 * 1024),
            Holding("executorch", LANE_B, (span(1600, 100),), heap_kib=40 * 1024),
        )
    )
    lanes = [
        ProcessMaps(
            pid,
            Role.LANE,
            smaps(entry(100, 50, "[heap]", pss=40, private=30), entry(1600, 100, private=100)),
            WORKER,
        )
        for pid in (LANE_A, LANE_B)
    ]
    tool = attribute(lanes, layout)
    assert close(tool.adapter("nobel") or Share(), Share(120, 120))
    assert close(tool.adapter("executorch") or Share(), Share(130, 130))
    assert close(dict(tool.runtime_parts)["heaps"], Share(100 - 50, 80 - 50))
    assert close(tool.total, total(lanes))


def test_an_address_used_again_is_the_later_loads() -> None:
    # The seed's pages at 1000-1100 were freed in this lane and nobel's load took them.
    lane = ProcessMaps(LANE_A, Role.LANE, smaps(entry(1000, 100, private=100)), WORKER)
    layout = ToolLayout(
        (
            Holding(PACKING, WORKER, (span(1000, 400),)),
            Holding("nobel", LANE_A, (span(1000, 100),)),
        ),
    )
    tool = attribute([lane], layout)
    assert close(tool.adapter("nobel") or Share(), Share(100, 100))
    assert tool.packed_weights == Share()


def test_a_lane_of_another_worker_does_not_inherit_this_ones_packing() -> None:
    other = ProcessMaps(999, Role.LANE, smaps(entry(1000, 400, pss=200)), worker=998)
    _, layout = engine()
    tool = attribute([other], layout)
    assert tool.packed_weights == Share()
    assert close(tool.runtime, Share(400, 200))  # shared pages it did not make: runtime


def test_libraries_are_told_by_the_package_they_come_with() -> None:
    site = "/venv/lib/python3.11/site-packages"
    worker = smaps(
        entry(10, 8, f"{site}/executorch/extension/pybindings/_C.cpython-311.so"),
        entry(20, 4, f"{site}/executorch/lib/libexecutorch.so"),
        entry(30, 2, f"{site}/torchao/_C.abi3.so"),
        entry(40, 3, "/usr/lib/python3.11/lib-dynload/_ssl.cpython-311.so"),
        entry(50, 5, "/usr/lib/libpython3.11.so.1.0"),
        entry(60, 1, f"{site}/tokenizers/tokenizers.abi3.so"),
    )
    tool = attribute([ProcessMaps(WORKER, Role.WORKER, worker)], ToolLayout())
    runtime = dict(tool.runtime_parts)
    assert {name: share.rss_mib for name, share in runtime.items()} == pytest.approx(
        {"executorch": 12, "torch": 2, "python": 8, "libraries": 1}
    )


def test_added_is_what_was_mapped_in_between() -> None:
    before = (span(100, 40), span(1000, 10))
    after = (span(100, 50), span(500, 20), span(1000, 10))
    assert added(before, after) == (span(140, 10), span(500, 20))
    assert added(after, before) == ()
    assert added((), (span(1, 1),)) == (span(1, 1),)


def test_this_process_read_whole_is_the_app_and_matches_its_pss() -> None:
    block = bytearray(32 * MIB)  # a chunk malloc maps: it shows up in the anonymous ranges
    address = ctypes.addressof(ctypes.c_char.from_buffer(block))
    assert any(start <= address < end for start, end in anonymous_ranges())
    tool = measure_tool(os.getpid(), ToolLayout())
    own = sample()
    assert tool.processes >= 1
    assert tool.app.pss_mib > 30
    assert tool.total.pss_mib == pytest.approx(tool.app.pss_mib + tool.helpers.pss_mib)
    assert tool.app.rss_mib == pytest.approx(own.rss_mib, rel=0.1)
    del block


def test_a_worker_is_told_by_its_forks_and_other_children_are_helpers(tmp_path: Path) -> None:
    """An engine's worker forks its lanes, which keep its command line; every other child
    of the tool was started afresh."""
    forks = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    time.sleep(60); os._exit(0)\n"
        f"open({str(tmp_path / 'forked')!r}, 'w').close(); time.sleep(60)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", forks])
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "forked").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        roles = {p.pid: (p.role, p.worker) for p in read_tool(os.getpid())}
        (lane,) = [pid for pid, (role, _) in roles.items() if role is Role.LANE]
        assert roles[lane] == (Role.LANE, worker.pid)
        assert roles[worker.pid] == (Role.WORKER, None)
        assert roles[helper.pid] == (Role.HELPER, None)
        assert roles[os.getpid()] == (Role.APP, None)
    finally:
        for child in psutil.Process(worker.pid).children():
            child.kill()
        worker.kill()
        helper.kill()
        worker.wait()
        helper.wait()


def test_the_benchmark_reads_the_settled_tool_after_the_scorer_has_gone() -> None:
    from benchmarks.tool_memory import SETTLE_AFTER_S
    from lora_tui.engine.host import SCORER_IDLE_S

    assert SETTLE_AFTER_S > SCORER_IDLE_S
