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
    from lora_tui.engine.threads import lane_layout

    assert lane_layout(1, cores=2) == (1, 2)  # alone: every core
    assert lane_layout(2, cores=2) == (2, 1)
    assert lane_layout(3, cores=2) == (2, 1)  # no more lanes than cores
    assert lane_layout(3, cores=8) == (3, 2)
    assert lane_layout(0, cores=4) == (1, 4)
    # --threads sets each lane's pool, and so how many lanes fit on the cores.
    assert lane_layout(2, threads=2, cores=2) == (1, 2)  # panes take turns, with both cores
    assert lane_layout(3, threads=1, cores=2) == (2, 1)
    assert lane_layout(2, threads=4, cores=2) == (1, 4)  # more threads than cores: one lane
