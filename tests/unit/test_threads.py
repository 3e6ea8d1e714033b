"""Thread layout: lanes and pools that never ask for more cores than there are."""

from __future__ import annotations

import subprocess
import sys


def test_the_xnnpack_pool_is_sized_once_per_process() -> None:
    script = (
        "from lora_tui.engine.threads import configure_threads\n"
        "assert configure_threads() == configure_threads()  # the same size again is fine\n"
        "try:\n"
        "    configure_threads(3)\n"
        "except ValueError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already sized" in done.stdout


def test_lane_layout_gives_each_answering_pane_its_share_of_the_cores() -> None:
    from lora_tui.engine.threads import LaneLayout, lane_layout

    def fixed(lanes: int, pool: int, cores: int) -> LaneLayout:
        return LaneLayout(lanes, pool, cores, resizing=False)

    # Where the pool can be resized: a lane per pane (up to a core each), each lane's pool of
    # every core, of which it uses its share while other lanes answer too.
    assert lane_layout(1, cores=2, resizable=True) == fixed(1, 2, 2)  # alone: every core
    assert lane_layout(2, cores=2, resizable=True) == LaneLayout(2, 2, 2, resizing=True)
    assert lane_layout(3, cores=2, resizable=True) == LaneLayout(2, 2, 2, resizing=True)
    assert lane_layout(3, cores=8, resizable=True) == LaneLayout(3, 8, 8, resizing=True)
    # Where it cannot, each lane's pool is its share for good, and the UI is told so.
    assert lane_layout(1, cores=2) == fixed(1, 2, 2)
    assert lane_layout(0, cores=4) == fixed(1, 4, 4)
    two = lane_layout(2, cores=2)
    assert (two.lanes, two.pool, two.resizing, two.fallback) == (2, 1, False, True)
    assert two.note and "uses 1 of 2 cores" in two.note
    assert lane_layout(3, cores=8) == LaneLayout(3, 2, 8, resizing=False, fallback=True)
    # --threads fixes each lane's pool, and so how many lanes fit on the cores; a choice,
    # so nothing to warn about.
    for resizable in (False, True):
        assert lane_layout(2, threads=2, cores=2, resizable=resizable) == fixed(1, 2, 2)
        assert lane_layout(3, threads=1, cores=2, resizable=resizable) == fixed(2, 1, 2)
        assert lane_layout(2, threads=4, cores=2, resizable=resizable) == fixed(1, 4, 2)
    assert lane_layout(3, threads=1, cores=2).note is None
    assert lane_layout(2, cores=2, resizable=True).note is None


def test_busy_lanes_share_the_cores_and_a_lone_one_has_them_all() -> None:
    from lora_tui.engine.threads import LaneLayout, thread_shares

    assert thread_shares(2, 1) == [2]
    assert thread_shares(2, 2) == [1, 1]
    assert thread_shares(4, 3) == [2, 1, 1]  # the remainder to the first, none left idle
    assert thread_shares(8, 3) == [3, 3, 2]
    assert thread_shares(2, 3) == [1, 1, 1]  # never none
    assert thread_shares(2, 0) == []
    assert LaneLayout(2, 2, 2, resizing=True).shares(1) == [2]
    assert LaneLayout(2, 2, 2, resizing=True).shares(2) == [1, 1]
    assert LaneLayout(2, 1, 2, resizing=False).shares(1) == [1]  # fixed: its pool, always


def test_without_the_runtime_loaded_there_is_no_count_to_read() -> None:
    """A process that never looked for the pool (no host made) reads no thread count, and
    pays nothing for it: the pybindings are not imported to ask."""
    script = (
        "import sys\n"
        "from lora_tui.engine.threads import threads_in_use\n"
        "print(threads_in_use(), 'executorch.extension.pybindings.portable_lib' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["None", "False"]


def test_the_pool_is_resized_in_place() -> None:
    """The binding reaches the pool the pybindings made (its size read back both ways) and
    sets how many of its threads take part: 0 or more than it has means all."""
    script = """
from lora_tui.engine.threads import configure_threads, pool_binding, threads_in_use, use_threads
assert configure_threads(2) == 2
binding = pool_binding()
assert binding is not None
assert threads_in_use() == 2
assert use_threads(1) == 1 and threads_in_use() == 1
assert use_threads(0) == 2 and use_threads(5) == 2
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "ok"
