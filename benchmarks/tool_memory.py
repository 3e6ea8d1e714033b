"""The whole tool's memory against the model's: ``lora-tui`` as a user starts it (the app,
headless by Textual's pilot, the demo's build child, the real engine), every process of it
read from /proc/PID/smaps and attributed as the memory panel does (engine/memory.py).

    .venv/bin/python -m benchmarks.tool_memory [--quantize 8da4w|8da8w]

The demo must be built (``lora-tui demo``). Once every pane is ready, one prompt goes to
every pane; once each has answered and its reply has been scored under the base, the tool
is read ("answered"), and again once the pre-flight checker and the idle scorer have let
go ("settled"). The model's own memory is the foundation's file plus each adapter's LoRA
weights and KV cache, as the manifest sizes them; the target is the settled tool's PSS
within 1.5x of it.
Figures go to ``benchmarks/results/tool_memory[_MODE].json``; run it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from benchmarks import markdown
from lora_tui.format import QUANTIZE_MODES

PROMPT = "Who won the Nobel Prize in Physics in 2024?"
TARGET = 1.5  # the whole tool's PSS, at most this many times the model's own memory
SETTLE_TIMEOUT_S = 120.0
# After the last score: longer than the scorer stays idle (host.SCORER_IDLE_S, which this
# process cannot import: it imports torch, which the app's process never does).
SETTLE_AFTER_S = 20.0
ANSWER_TIMEOUT_S = 600.0  # every pane's reply, and each scored under the base


def reading(app) -> dict:  # noqa: ANN001
    """The tool now: each part's RSS and PSS, each adapter's, and each process's."""
    from lora_tui.engine.memory import attribute, read_tool
    from lora_tui.engine.paths import cache_dir

    layout = replace(app.main.memory_panel.tool_layout, packed_dir=str(cache_dir() / "packed"))
    processes = read_tool(os.getpid())
    tool = attribute(processes, layout)

    def mib(share) -> dict:  # noqa: ANN001
        return {"rss_mib": round(share.rss_mib, 1), "pss_mib": round(share.pss_mib, 1)}

    return {
        "total": mib(tool.total),
        "processes": tool.processes,
        "parts": {
            "foundation_file": mib(tool.foundation_file),
            "packed_weights": mib(tool.packed_weights),
            "runtime": mib(tool.runtime),
            "adapters": mib(tool.adapters_total),
            "other_programs": mib(tool.other_programs),
            "app": mib(tool.app),
            "helpers": mib(tool.helpers),
        },
        "adapters": {name: mib(share) for name, share in tool.adapters},
        "runtime_parts": {name: mib(share) for name, share in tool.runtime_parts},
        "by_process": [
            {
                "pid": p.pid,
                "role": str(p.role),
                "rss_mib": round(sum(m.rss_kib for m in p.mappings) / 1024, 1),
                "pss_mib": round(sum(m.pss_kib for m in p.mappings) / 1024, 1),
            }
            for p in processes
        ],
    }


async def measure(app, report: dict) -> None:  # noqa: ANN001
    from lora_tui.engine.preflight import CHECKER_MODULE
    from lora_tui.engine.types import GenerationSettings
    from lora_tui.ui.widgets.adapter_pane import PaneState

    started = time.monotonic()
    async with app.run_test(size=(160, 50)) as pilot:
        app.session.settings = GenerationSettings(temperature=0.0, max_new_tokens=64)
        panes = app.main.panes
        while not panes or any(p.state is not PaneState.READY for p in panes.values()):
            if any(p.state is PaneState.ERROR for p in panes.values()):
                raise SystemExit(f"a load failed: see {report['log']}")
            await pilot.pause(0.2)
        report["every_pane_ready_s"] = round(time.monotonic() - started, 1)
        app.main.broadcast = True
        app.main.prompt.value = PROMPT
        await pilot.press("enter")
        await pilot.pause(0.5)
        others = [p for p in panes.values() if not p.is_base]
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while any(p.state is not PaneState.READY for p in panes.values()) or any(
            p.departure is None for p in others
        ):
            if time.monotonic() > deadline:
                raise SystemExit(f"no answer or no score within {ANSWER_TIMEOUT_S:.0f} s")
            await pilot.pause(0.2)
        report["answered_s"] = round(time.monotonic() - started, 1)
        report["answered"] = reading(app)
        answered = time.monotonic()
        deadline = answered + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline and (
            checker_alive(CHECKER_MODULE) or time.monotonic() < answered + SETTLE_AFTER_S
        ):
            await pilot.pause(0.5)
        report["settled_s"] = round(time.monotonic() - started, 1)
        report["settled"] = reading(app)
        infos = app.main.memory_panel.adapters.values()
        report["model"] = {
            info.name: {
                "lora_mib": round(info.breakdown.adapter_weights_mib or 0.0, 1),
                "kv_mib": round(info.breakdown.kv_cache_mib or 0.0, 1),
            }
            for info in infos
        }


def checker_alive(marker: str) -> bool:
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if marker in " ".join(child.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantize", choices=QUANTIZE_MODES, default="none")
    args = parser.parse_args()

    from benchmarks.record import write_results
    from lora_tui.demo.build import (
        build_demos,
        demo_programs,
        demo_quantization,
        demos_current,
    )
    from lora_tui.demo.build_child import BuildProcess
    from lora_tui.engine.foundations import FoundationPrograms, labelled
    from lora_tui.engine.worker import foundations_engine_factory
    from lora_tui.ui.app import LoraTuiApp

    quantization = demo_quantization(args.quantize)
    weights, programs = demo_programs(quantization)
    if not all(p.is_file() for p in [weights, *programs]):
        raise SystemExit(f"build the demo first: lora-tui demo --quantize {args.quantize}")
    scratch = Path(tempfile.mkdtemp(prefix="lora-tui-tool-memory-"))
    log = scratch / "tool.log"
    # As `lora-tui` opens the demo: a current build at once, else its build in a child.
    current = demos_current([args.quantize])
    groups = labelled([FoundationPrograms(weights, tuple(programs))], [quantization.label])
    app = LoraTuiApp(
        [p for g in groups for p in g.programs],
        foundations_engine_factory(groups, None, True, log),
        names={p: g.name_of(p) for g in groups for p in g.programs},
        transcript_dir=scratch,
        cursor_blink=False,
        build=None if current else BuildProcess(partial(build_demos, [args.quantize]), log),
    )
    report: dict = {
        "quantize": args.quantize,
        "foundation_mib": round(weights.stat().st_size / 2**20, 1),
        "log": str(log),
    }
    asyncio.run(measure(app, report))
    own = sum(a["lora_mib"] + a["kv_mib"] for a in report["model"].values())
    report["model_mib"] = round(report["foundation_mib"] + own, 1)
    report["target_mib"] = round(TARGET * report["model_mib"], 1)
    for when in ("answered", "settled"):
        print(when_lines(report, when))
    name = "tool_memory" if args.quantize == "none" else f"tool_memory_{args.quantize}"
    write_results(name, report)


def when_lines(report: dict, when: str) -> str:
    read = report[when]
    lines = [
        f"{when}: whole tool {read['total']['rss_mib']:,.0f} MiB RSS / "
        f"{read['total']['pss_mib']:,.0f} MiB PSS over {read['processes']} processes; "
        f"model {report['model_mib']:,.0f} MiB, target {report['target_mib']:,.0f} MiB PSS"
    ]
    for part, share in read["parts"].items():
        lines.append(f"  {part:16} {share['rss_mib']:9,.1f} RSS {share['pss_mib']:9,.1f} PSS")
    for group in ("adapters", "runtime_parts"):
        for name, share in read[group].items():
            lines.append(f"    {name:14} {share['rss_mib']:9,.1f} RSS {share['pss_mib']:9,.1f} PSS")
    for process in read["by_process"]:
        lines.append(
            f"  pid {process['pid']:<7} {process['role']:7} "
            f"{process['rss_mib']:9,.1f} RSS {process['pss_mib']:9,.1f} PSS"
        )
    return "\n".join(lines)


# --- the docs' table (benchmarks/tables.py puts it in its page) ---

PARTS = {
    "foundation_file": "the foundation's file pages (`.ptd` still mapped)",
    "packed_weights": "packed weights (XNNPACK's layout of the foundation)",
    "runtime": "runtime (torch, ExecuTorch, Python: libraries and heaps)",
    "adapters": "the adapters' own (KV caches, LoRA weights, buffers)",
    "other_programs": "other program memory (outputs, the departure scorer's copy)",
    "app": "the app (the UI process)",
    "helpers": "helpers (pre-flight check, build, multiprocessing's tracker)",
}


RUNTIME = {
    "executorch": "ExecuTorch's libraries",
    "torch": "torch's libraries",
    "python": "Python's",
    "libraries": "other libraries",
    "heaps": "heaps (what the interpreters and libraries allocated)",
}


def tool_memory_table(report: dict) -> list[str]:
    settled, answered = report["settled"], report["answered"]
    lines = markdown.head(
        ["", "settled: RSS", "**settled: PSS**", "answered: RSS", "answered: PSS"]
    )

    def row(label: str, settled_share: dict, answered_share: dict, bold: bool = False) -> None:
        pss = f"{settled_share['pss_mib']:,.0f} MiB"
        lines.append(
            markdown.row(
                [
                    label,
                    f"{settled_share['rss_mib']:,.0f} MiB",
                    f"**{pss}**" if bold else pss,
                    f"{answered_share['rss_mib']:,.0f} MiB",
                    f"{answered_share['pss_mib']:,.0f} MiB",
                ]
            )
        )

    row(
        f"**whole tool** ({settled['processes']} / {answered['processes']} processes)",
        settled["total"],
        answered["total"],
        bold=True,
    )
    for part, label in PARTS.items():
        row(label, settled["parts"][part], answered["parts"][part])
        if part == "adapters":
            for name, share in settled["adapters"].items():
                row(f"· `{name}`", share, answered["adapters"].get(name, share))
        if part == "runtime":
            shares = sorted(settled["runtime_parts"].items(), key=lambda p: -p[1]["pss_mib"])
            for name, share in shares:
                row(f"· {RUNTIME[name]}", share, answered["runtime_parts"].get(name, share))
    ratio = settled["total"]["pss_mib"] / report["model_mib"]
    lines.append(
        markdown.row(
            [
                "the model: foundation file + each adapter's LoRA + KV",
                "",
                f"{report['model_mib']:,.0f} MiB (the tool {ratio:.2f}x)",
                "",
                f"target ≤ {report['target_mib']:,.0f} MiB",
            ]
        )
    )
    return [*lines, "", phone_app(report)]


def phone_app(report: dict) -> str:
    """What an app on a phone would hold for the same programs, from the settled figures:
    what the programs need (the packed foundation, the embedding rows a step reads, each
    adapter's own) and ExecuTorch's native libraries, without Python, torch or a UI."""
    settled = report["settled"]
    parts = settled["parts"]
    runtime = settled.get("runtime_parts", {}).get("executorch", {"pss_mib": 0.0})["pss_mib"]
    held = {
        "the packed foundation": parts["packed_weights"]["pss_mib"],
        "the embedding rows it reads": parts["foundation_file"]["pss_mib"],
        "each adapter's own": parts["adapters"]["pss_mib"],
        "ExecuTorch's libraries": runtime,
    }
    total = sum(held.values())
    listed = ", ".join(f"{name} {mib:,.0f} MiB" for name, mib in held.items())
    rest = settled["total"]["pss_mib"] - total
    return (
        f"A phone app over the same programs would hold about **{total:,.0f} MiB** "
        f"({total / report['model_mib']:.2f}x the model): {listed}. The tool holds "
        f"{rest:,.0f} MiB more: Python, torch, the interpreters' heaps, the UI and helpers."
    )


if __name__ == "__main__":
    main()
