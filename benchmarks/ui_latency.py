"""Key-to-screen latency of the app while two real adapters stream replies.

    .venv/bin/python -m benchmarks.ui_latency --weights OUT/foundation.ptd A.pte B.pte \\
        [--presses 200]

Runs the app headless with the real engine process, sends a prompt to both adapters, and
while they generate presses Tab (select the next adapter) again and again. Each latency is
the time from handing the key to the app's driver until the screen refresh that shows the
new selection has run (``call_after_refresh``). Pilot's own press() is not used: it waits
for the process to look idle, which a streaming app never does. Prints p50, p95 and max,
and writes them to ``benchmarks/results/ui_latency[_idle].json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from textual import events
from textual.widgets import Input

from benchmarks import markdown
from benchmarks.record import write_results
from lora_tui.engine import GenerationSettings
from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.engine.worker import foundations_engine_factory
from lora_tui.ui.app import LoraTuiApp

PROMPT = "Write a long story about a lighthouse keeper and a storm."


async def measure(
    weights: Path,
    programs: list[Path],
    presses: int,
    idle: bool = False,
    threads: int | None = None,
) -> list[float]:
    # As the app opens them: a lane per pane, unless --threads leaves room for fewer.
    group = FoundationPrograms(weights, tuple(programs))
    factory = foundations_engine_factory([group], None, True, None, threads)
    app = LoraTuiApp(programs, factory, settings=GenerationSettings(max_new_tokens=400))
    latencies: list[float] = []
    async with app.run_test(size=(140, 40)) as pilot:
        while not app.main.panes or any(p.state == "loading" for p in app.main.panes.values()):
            await asyncio.sleep(0.2)
        prompt = app.main.query_one("#prompt", Input)

        async def keep_generating() -> None:
            if idle:
                return
            if all(p.state != "generating" for p in app.main.panes.values()):
                prompt.value = PROMPT
                await pilot.press("enter")

        await keep_generating()
        await asyncio.sleep(1.0)  # let the replies get going
        refreshed = asyncio.Event()
        select_step = app.main.action_select_step

        def select_and_watch(step: int) -> None:
            select_step(step)
            app.call_after_refresh(refreshed.set)

        app.main.action_select_step = select_and_watch  # type: ignore[method-assign]
        for _ in range(presses):
            await keep_generating()
            refreshed.clear()
            started = time.perf_counter()
            app._driver.send_message(events.Key("tab", None))  # as a real key press arrives
            await refreshed.wait()
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.05)
        generating = sum(p.state == "generating" for p in app.main.panes.values())
        print(f"adapters generating at the end: {generating}")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("programs", nargs=2, type=Path)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--idle", action="store_true", help="measure with nothing generating")
    parser.add_argument("--threads", type=int, help="as lora-tui --threads (2: one process)")
    args = parser.parse_args()
    latencies = asyncio.run(
        measure(args.weights, args.programs, args.presses, args.idle, args.threads)
    )
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    while_ = "both adapters idle" if args.idle else "two adapters stream"
    print(
        f"{len(latencies)} key presses while {while_}: "
        f"p50 {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms, "
        f"max {latencies[-1]:.1f} ms"
    )
    report = {
        "programs": [p.name for p in args.programs],
        "while": while_,
        "threads": args.threads,
        "presses": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(latencies[-1], 1),
    }
    write_results("ui_latency_idle" if args.idle else "ui_latency", report)


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def ui_latency_table(report: dict) -> list[str]:
    what = f"{report['while']} ({', '.join(report['programs'])}, {report['presses']} presses)"
    cells = [what, f"{report['p50_ms']} ms", f"**{report['p95_ms']} ms**", f"{report['max_ms']} ms"]
    return [*markdown.head(["", "p50", "p95", "max"]), markdown.row(cells)]


if __name__ == "__main__":
    main()
