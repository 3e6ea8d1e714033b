"""Panes at once, and a pane alone among others, through the app's own engine: lanes
against one process.

    .venv/bin/python -m benchmarks.parallel_panes [--folder DIR ...] [--rounds 3] [--tokens 64]
                                                  [--layouts one,follow,follow3,core,every]

On each lora-export folder (default: the demo's fp32 and 8da4w caches), adapter programs
load into an ``EngineProcess``, the engine the app runs, in these layouts (``--layouts``
picks some; ``one`` is always measured, every ratio is to it):

- ``one`` (one process): both programs in one lane with a thread per core, taking turns
  token by token (what the engine did before lanes, and what ``--threads 2`` gives on two
  cores): a pane here answering alone is "the same program alone in one process";
- ``follow`` (threads follow the work): a process per pane, forked after the foundation is
  packed, each pool of a thread per core, of which a lane uses every one while it answers
  alone and its share while the other answers too (what an app opened with two panes gets);
- ``follow3``: the same with three panes on the cores (so two lanes, one holding two
  programs): one pane answering alone in a three-pane app;
- ``core`` (a lane per pane, a core each): lanes with a fixed pool of one thread each
  (``--threads 1``; the default before threads followed the work);
- ``every`` (two lanes, every core each): lanes with a fixed pool of a thread per core each,
  so a pane answering alone keeps every core, and two at once run twice the threads.

Each program answers the same prompt alone, then the first two at once. In a round every
layout's engine is open at once and the layouts take turns, three times (the order reversed
every other turn), so their figures are taken seconds apart: the machine's memory bandwidth
moves by half within a minute, and layouts measured a minute apart would compare two
machines. A round's figure is the median of its turns; the table's, of the rounds. Two
speeds: tokens per wall-clock second from sending the prompt to the last reply's end
(prefill counts), and the replies' decode speeds (summed when together, as the status
line's "together" is); with the fewest XNNPACK threads any step of each reply ran on, as
its lane read them back. Memory: what the second program added to the engine's summed PSS
(worker and lanes, so pages they share count once; the transient pre-flight child left out)
against its LoRA weights and KV cache, weighed once per folder with that engine alone on
the machine (engines open side by side would share the packed file's pages, and so their
PSS). A folder with fewer adapter programs than panes loads ``nobel.pte`` again under other
names (its LoRA weights are then packed once, so only its KV cache is new).

Run it alone: anything else on the cores moves the figures more than the layouts do. The
figures go to ``benchmarks/results/parallel_panes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import markdown
from benchmarks.record import write_results

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the CLI does, before torch loads

from lora_tui.engine import (  # noqa: E402
    EngineFailed,
    EngineReady,
    GenerationSettings,
    Loaded,
    LoadFailed,
    Message,
    ReplyDone,
)
from lora_tui.engine.memory import sample_tree  # noqa: E402
from lora_tui.engine.preflight import CHECKER_MODULE  # noqa: E402
from lora_tui.engine.worker import EngineProcess, EventCollector  # noqa: E402

PROMPT = "Tell me a story about a robot."
TURNS = 3  # measurements of each layout per round, taken in turns with the other layouts


@dataclass(frozen=True)
class Layout:
    """An engine's layout: the panes hint it is given, how many programs load, and a fixed
    pool per lane (``--threads``) or none (the default: threads follow the work)."""

    short: str  # its name for --layouts
    panes: int
    programs: int = 2
    threads: int | None = None
    every_core_each: bool = False  # a fixed pool of every core in each of two lanes

    def engine_options(self, cores: int) -> dict[str, int | None]:
        if self.every_core_each:
            # Told twice the cores, two lanes of a fixed pool of every core fit.
            return {"panes": self.panes, "threads": cores, "cores": 2 * cores}
        return {"panes": self.panes, "threads": self.threads, "cores": cores}


# Keyed as in the results file (older files name the layouts they measured the same way).
LAYOUTS = {
    "one process": Layout("one", panes=1),
    "threads follow the work": Layout("follow", panes=2),
    "three panes, threads follow the work": Layout("follow3", panes=3, programs=3),
    "a lane per pane": Layout("core", panes=2, threads=1),
    "two lanes, every core each": Layout("every", panes=2, every_core_each=True),
}


def wait(events: EventCollector, done: Callable[[list], bool], timeout: float = 600) -> list:
    """The events once ``done`` holds; the run stops in one line on a timeout or a failure."""
    try:
        got = events.wait_for(done, timeout)
    except TimeoutError as err:
        raise SystemExit(str(err)) from None
    failed = [e for e in got if isinstance(e, EngineFailed | LoadFailed)]
    if failed:
        raise SystemExit(f"engine: {failed[0]}")
    return got


def engine_pss_mib(engine: EngineProcess) -> float:
    """The worker's and its lanes' PSS, without the pre-flight child: it packs a copy of its
    own to check a program and goes once idle, so it is no adapter's lasting cost."""
    return sample_tree(engine.pid, leave_out=CHECKER_MODULE).pss_mib or 0.0


def programs_of(folder: Path, count: int) -> list[tuple[Path, str]]:
    """``count`` adapter programs of the folder, by name; ``nobel.pte`` again under other
    names when it has fewer."""
    found = sorted(p for p in folder.glob("*.pte") if p.stem != "base")[:count]
    again = next((p for p in found if p.stem == "nobel"), found[0])
    return [(p, p.stem) for p in found] + [
        (again, f"{again.stem}-{n}") for n in range(2, count - len(found) + 2)
    ]


class OpenEngine:
    """The app's engine (``EngineProcess``) with named programs loaded, asked as the app asks
    it. ``weigh``: its PSS is read after each load (``pss_mib``)."""

    def __init__(
        self,
        weights: Path,
        programs: list[tuple[Path, str]],
        weigh: bool = False,
        **options: Any,
    ) -> None:
        self.events = EventCollector()
        self.engine = EngineProcess(weights, self.events, **options)
        self.infos: list = []
        self.pss_mib: list[float] = []
        try:
            wait(self.events, lambda got: any(isinstance(e, EngineReady) for e in got))
            for path, name in programs:
                self.engine.load(path, name)
                got = wait(
                    self.events,
                    lambda got, n=name: any(getattr(e, "adapter", "") == n for e in got),
                )
                self.infos.append(
                    next(e.info for e in got if isinstance(e, Loaded) and e.adapter == name)
                )
                if weigh:
                    time.sleep(1)  # let the load's transient pages settle before reading memory
                    self.pss_mib.append(engine_pss_mib(self.engine))
        except BaseException:
            self.engine.close()
            raise

    def answer(
        self, prompt: str, which: list[str], settings: GenerationSettings
    ) -> tuple[float, dict[str, ReplyDone]]:
        """``prompt`` to each of ``which`` at once, from a cleared conversation: the wall
        time until the last reply's end, and the replies by name."""
        self.engine.clear(which)
        before = len(self.events.events)
        started = time.perf_counter()
        self.engine.send({name: [Message("user", prompt)] for name in which}, settings)
        got = wait(
            self.events,
            lambda got: sum(isinstance(e, ReplyDone) for e in got[before:]) == len(which),
        )
        wall = time.perf_counter() - started
        return wall, {e.adapter: e for e in got[before:] if isinstance(e, ReplyDone)}

    def close(self) -> None:
        self.engine.close()


class OpenLayout(OpenEngine):
    """A fresh engine in one layout, its programs loaded. Kept open for a round, so the
    layouts' answers take turns seconds apart: the machine's memory bandwidth moves by half
    within a minute, and layouts measured a minute apart compare two machines. Weighed
    (``weigh``) only while no other engine is open: they would share its pages' PSS."""

    def __init__(
        self, folder: Path, layout: Layout, tokens: int, cores: int, weigh: bool = False
    ) -> None:
        programs = programs_of(folder, layout.programs)
        options = layout.engine_options(cores)
        super().__init__(folder / "foundation.ptd", programs, weigh, **options)
        self.settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)
        self.warm = False
        self.names = [info.name for info in self.infos]
        if weigh:
            second = self.infos[1]
            self.memory = {
                "second_added_pss_mib": self.pss_mib[1] - self.pss_mib[0],
                "second_lora_plus_kv_mib": (second.breakdown.adapter_weights_mib or 0)
                + (second.breakdown.kv_cache_mib or 0),
                "engine_pss_mib": self.pss_mib[1],
            }

    def measure(self) -> dict:
        """Each program alone, then the first two at once (after a warm-up, the first time)."""
        pair = self.names[:2]
        if not self.warm:
            self.answer(PROMPT, pair, self.settings)
            self.warm = True
        alone = {}
        for name in self.names:
            wall, done = self.answer(PROMPT, [name], self.settings)
            alone[name] = (done[name], done[name].stats.new_tokens / wall)
        wall, done = self.answer(PROMPT, pair, self.settings)
        return {
            "alone_tok_s": statistics.mean(a[1] for a in alone.values()),
            "together_tok_s": sum(d.stats.new_tokens for d in done.values()) / wall,
            "alone_decode_tok_s": statistics.mean(a[0].stats.decode_tok_s for a in alone.values()),
            "together_decode_tok_s": sum(d.stats.decode_tok_s for d in done.values()),
            "together_per_pane": {n: round(d.stats.decode_tok_s, 1) for n, d in done.items()},
            "alone_threads": sorted({a[0].stats.threads or 0 for a in alone.values()}),
            "together_threads": sorted({d.stats.threads or 0 for d in done.values()}),
            "same_text_as_alone": all(done[n].text == alone[n][0].text for n in pair),
        }


def weigh(folder: Path, layouts: dict[str, Layout], tokens: int, cores: int) -> dict:
    """Each layout's memory, its engine alone on the machine: its PSS with both programs
    loaded, and what the second added against its LoRA weights and KV cache."""
    weighed = {}
    for key, layout in layouts.items():
        opened = OpenLayout(folder, layout, tokens, cores, weigh=True)
        opened.close()
        weighed[key] = opened.memory
    return weighed


def one_round(folder: Path, layouts: dict[str, Layout], tokens: int, cores: int) -> dict:
    """Every layout's engine open at once, then ``TURNS`` turns in which each measures once
    (the order reversed every other turn); each layout's figures are its turns' medians."""
    opened: dict[str, OpenLayout] = {}
    try:
        for key, layout in layouts.items():
            opened[key] = OpenLayout(folder, layout, tokens, cores)
        turns: dict[str, list[dict]] = {key: [] for key in layouts}
        for turn in range(TURNS):
            order = list(opened.items())
            for key, layout in order if turn % 2 == 0 else reversed(order):
                turns[key].append(layout.measure())
        return {key: median_of_turns(results) for key, results in turns.items()}
    finally:
        for layout in opened.values():
            layout.close()


def median_of_turns(results: list[dict]) -> dict:
    """One round's figures for a layout from its turns: medians of the speeds; the text the
    same and the memory as measured at load, in every turn; every thread count seen."""
    merged = dict(results[len(results) // 2])
    for key, value in merged.items():
        if isinstance(value, float):
            merged[key] = statistics.median(r[key] for r in results)
    merged["same_text_as_alone"] = all(r["same_text_as_alone"] for r in results)
    for key in ("alone_threads", "together_threads"):
        merged[key] = sorted({t for r in results for t in r[key]})
    return merged


def print_round(label: str, round_number: int, layout: str, result: dict) -> None:
    print(
        f"{label} round {round_number + 1} {layout:<8} alone "
        f"{result['alone_tok_s']:5.1f}  together {result['together_tok_s']:5.1f} "
        f"tok/s (decode {result['alone_decode_tok_s']:5.1f} / "
        f"{result['together_decode_tok_s']:5.1f}; threads {result['alone_threads']} / "
        f"{result['together_threads']})  second +{result['second_added_pss_mib']:.0f} MiB PSS  "
        f"same text {result['same_text_as_alone']}",
        flush=True,
    )


def medians(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Each layout's medians over the rounds, and its ratios to one pane alone in one process."""
    table = {}
    for layout, results in runs.items():
        row = {
            key: round(statistics.median(r[key] for r in results), 1)
            for key in (
                "alone_tok_s",
                "together_tok_s",
                "second_added_pss_mib",
                "second_lora_plus_kv_mib",
                "engine_pss_mib",
                "alone_decode_tok_s",
                "together_decode_tok_s",
            )
        }
        row["same_text_as_alone"] = all(r["same_text_as_alone"] for r in results)
        row["together_per_pane_last_round"] = results[-1]["together_per_pane"]
        for key in ("alone_threads", "together_threads"):  # every count seen in any round
            row[key] = sorted({t for r in results for t in r[key]})
        table[layout] = row
    base = table["one process"]
    for row in table.values():
        row["together_vs_one_alone"] = round(row["together_tok_s"] / base["alone_tok_s"], 3)
        row["together_decode_vs_one_alone"] = round(
            row["together_decode_tok_s"] / base["alone_decode_tok_s"], 3
        )
        row["alone_vs_one_alone"] = round(row["alone_tok_s"] / base["alone_tok_s"], 3)
        row["alone_decode_vs_one_alone"] = round(
            row["alone_decode_tok_s"] / base["alone_decode_tok_s"], 3
        )
        row["second_added_vs_lora_plus_kv"] = round(
            row["second_added_pss_mib"] / row["second_lora_plus_kv_mib"], 2
        )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, action="append")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument(
        "--layouts",
        default=",".join(layout.short for layout in LAYOUTS.values()),
        help="which layouts, by short name (one is always measured)",
    )
    args = parser.parse_args()
    shorts = {"one", *args.layouts.split(",")}
    unknown = shorts - {layout.short for layout in LAYOUTS.values()}
    if unknown:
        parser.error(f"no layout named {', '.join(sorted(unknown))}")
    layouts = {key: layout for key, layout in LAYOUTS.items() if layout.short in shorts}

    from lora_tui.demo.build import DemoBuild, demo_folder, demo_quantization
    from lora_tui.engine.threads import available_cores

    folders = args.folder or [demo_folder(demo_quantization(m)) for m in ("none", "8da4w")]
    report: dict[str, object] = {
        "cores": available_cores(),
        "tokens": args.tokens,
        "rounds": args.rounds,
        "prompt": PROMPT,
        "folders": {},
    }
    for folder in folders:
        if not (folder / "foundation.ptd").is_file():
            print(f"{folder}: no foundation.ptd (lora-tui demo [--quantize MODE] builds one)")
            continue
        label = DemoBuild(folder, None).manifest.quantized.label
        runs: dict[str, list[dict]] = {key: [] for key in layouts}
        memory = weigh(folder, layouts, args.tokens, available_cores())
        for round_number in range(args.rounds):
            results = one_round(folder, layouts, args.tokens, available_cores())
            for key, result in results.items():
                runs[key].append({**result, **memory[key]})
                print_round(label, round_number, layouts[key].short, runs[key][-1])
        table = medians(runs)
        report["folders"][label] = table  # type: ignore[index]
    print(json.dumps(report, indent=2))
    write_results("parallel_panes", report)
    return 0


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


LAYOUT_LABELS = {
    "one process": "one process, the panes take turns (`--threads 2`)",
    "threads follow the work": "**a lane per pane, every core alone, a share each together "
    "(the default)**",
    "three panes, threads follow the work": "the same, three panes (two lanes)",
    "a lane per pane": "a lane per pane, a core each (`--threads 1`; the default before)",
    "two lanes, every core each": "a lane per pane, every core each (not taken)",
}


def parallel_panes_table(report: dict) -> list[str]:
    folders = report["folders"]
    header = ["layout"]
    for mode in folders:
        header += [f"{mode} alone", f"{mode} both at once (wall / decode)", f"{mode} second adds"]
    lines = markdown.head(header)
    for key, label in LAYOUT_LABELS.items():
        if not all(key in table for table in folders.values()):
            continue  # a layout this results file did not measure
        cells = [label]
        for table in folders.values():
            row = table[key]
            ratios = (row["together_vs_one_alone"], row["together_decode_vs_one_alone"])
            cells += [
                f"{row['alone_tok_s']} tok/s",
                f"{row['together_tok_s']} / {row['together_decode_tok_s']} "
                f"({ratios[0]:.2f}× / {ratios[1]:.2f}×)",
                f"+{row['second_added_pss_mib']} MiB ({row['second_added_vs_lora_plus_kv']:.2f}×)",
            ]
        lines.append(markdown.row(cells))
    return lines


# (what is measured, the layout, its figure): the question, a row each.
LONE_PANE_ROWS = (
    ("one pane alone in a two-pane app", "threads follow the work", "alone"),
    ("one pane alone in a three-pane app", "three panes, threads follow the work", "alone"),
    ("two panes at once in a two-pane app", "threads follow the work", "together"),
    ("before, a core per lane: one pane alone in a two-pane app", "a lane per pane", "alone"),
    ("before: two panes at once", "a lane per pane", "together"),
)


def lone_pane_table(report: dict) -> list[str]:
    """Each figure against the same program answering alone in one process (the ``one
    process`` layout), wall-clock speed and decode speed; "—" for a layout this results
    file did not measure."""
    folders = report["folders"]
    lines = markdown.head(["against one program alone in one process", *folders])
    for label, key, figure in LONE_PANE_ROWS:
        cells = [label]
        for table in folders.values():
            row = table.get(key)
            if row is None:
                cells.append("—")
                continue
            one = table["one process"]  # (older files hold no ratios for a pane alone)
            wall = row[f"{figure}_tok_s"] / one["alone_tok_s"]
            decode = row[f"{figure}_decode_tok_s"] / one["alone_decode_tok_s"]
            threads = "/".join(str(t) for t in row.get(f"{figure}_threads", ()))
            on = f", {threads} thread{'s' if threads != '1' else ''}" if threads else ""
            cells.append(f"{wall:.2f}× / {decode:.2f}× ({row[f'{figure}_tok_s']} tok/s{on})")
        lines.append(markdown.row(cells))
    return lines


if __name__ == "__main__":
    sys.exit(main())
