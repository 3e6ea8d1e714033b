"""The docs' benchmark tables, made from the files the benchmarks wrote.

    .venv/bin/python -m benchmarks.tables           # rewrite the tables in docs/
    .venv/bin/python -m benchmarks.tables --check   # exit 1 if a table differs from its file

Each table sits, in any page of ``docs/``, between ``<!-- table: NAME -->`` and
``<!-- /table -->``. Its renderer lives beside the benchmark that writes its figures
(``TABLES``); it is given the results files it names, and a line under the table says which
run made them. A test keeps the pages equal to the files, so no figure there is typed by
hand."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.markdown import measured
from benchmarks.record import RESULTS_DIR

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"(<!-- table: (\w+) -->\n)(.*?)(<!-- /table -->)", re.S)


@dataclass(frozen=True)
class Table:
    renderer: str  # "module:function" in benchmarks/
    sources: tuple[str, ...] = ()  # the results files it reads; its own name's when empty
    # A benchmark whose results file is not committed yet: until it is, the table is a line
    # saying how to make it (the others' files must be there, so a lost one fails the test).
    pending: bool = False

    def render(self, name: str) -> list[str]:
        module, function = self.renderer.split(":")
        names = self.sources or (name,)
        missing = [n for n in names if not (RESULTS_DIR / f"{n}.json").is_file()]
        if self.pending and missing:
            files = ", ".join(f"`benchmarks/results/{n}.json`" for n in missing)
            return [
                f"Not measured yet: `python -m benchmarks.{module}` writes {files}, "
                "then `python -m benchmarks.tables` makes this table."
            ]
        render: Callable[..., list[str]] = getattr(
            importlib.import_module(f"benchmarks.{module}"), function
        )
        reports = [load(source) for source in names]
        lines = render(*reports)
        provenances = [report.get("provenance") for report in reports]
        if len(names) == 1 or all(p == provenances[0] for p in provenances):
            return [*lines, "", measured(provenances[0])]
        return [
            *lines,
            "",
            *(f"`{n}.json`: {measured(p)}" for n, p in zip(names, provenances, strict=True)),
        ]


TABLES: dict[str, Table] = {
    "demo_eval": Table("demo_eval:demo_eval_table"),
    "ship_choice": Table(
        "demo_eval:ship_choice_table",
        ("demo_eval", "quantizations", "quant_fidelity_8da4w", "quant_fidelity_8da8w"),
    ),
    "ray_sweep": Table("ray_sweep:ray_sweep_table"),
    "ray_resume": Table("ray_resume:ray_resume_table"),
    "fuzz_programs": Table("fuzz_programs:fuzz_programs_table"),
    "fuzz_inputs": Table("fuzz_inputs:fuzz_inputs_table"),
    "decode_op_costs": Table("decode_op_costs:decode_op_costs_table"),
    "vs_llamacpp": Table("vs_llamacpp:vs_llamacpp_table"),
    "speed_summary": Table("vs_llamacpp:speed_summary_table", ("vs_llamacpp",)),
    "quantizations": Table("quantizations:quantizations_table"),
    "quant_fidelity_8da4w": Table("quant_fidelity:quant_fidelity_table"),
    "quant_fidelity_8da8w": Table("quant_fidelity:quant_fidelity_table"),
    "llama32_1b_shape": Table("llama32_1b_shape:llama32_1b_shape_table"),
    "llama32_1b_first_exports": Table(
        "llama32_1b_shape:first_exports_table", ("llama32_1b_shape",)
    ),
    "vs_llamacpp_1b": Table("vs_llamacpp_1b:vs_llamacpp_1b_table", pending=True),
    "vs_llamacpp_1b_history": Table(
        "vs_llamacpp_1b:vs_llamacpp_1b_history_table", ("vs_llamacpp_1b",), pending=True
    ),
    "vs_llamacpp_1b_bandwidth": Table(
        "vs_llamacpp_1b:vs_llamacpp_1b_bandwidth_table", ("vs_llamacpp_1b",), pending=True
    ),
    "vs_llamacpp_1b_watch": Table(
        "vs_llamacpp_1b:vs_llamacpp_1b_watch_table", ("vs_llamacpp_1b",), pending=True
    ),
    "export_bench": Table("export_bench:export_bench_table"),
    "memory": Table("memory:memory_table"),
    "memory_8da4w": Table("memory:memory_table"),
    "ui_latency": Table("ui_latency:ui_latency_table"),
    "ui_latency_idle": Table("ui_latency:ui_latency_table"),
    "first_run": Table("first_run:first_run_table"),
    "first_run_8da4w": Table("first_run:first_run_table"),
    "first_run_8da8w": Table("first_run:first_run_table"),
    "first_run_warm": Table("first_run:first_run_table"),
    "threads": Table("threads:threads_table"),
    "parallel_panes": Table("parallel_panes:parallel_panes_table"),
    "parallel_panes_lone": Table("parallel_panes:lone_pane_table", ("parallel_panes",)),
    "departure_cost": Table("departure_cost:departure_cost_table"),
    "program_report": Table("program_report:program_report_table"),
    "op_profile": Table("op_profile:op_profile_table"),
    "soak": Table("soak:soak_table"),
    "tool_memory": Table("tool_memory:tool_memory_table", pending=True),
}


def load(name: str) -> dict:
    return json.loads((RESULTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def rendered(docs: str) -> str:
    """``docs`` with every marked table made again from its results files."""

    def table(match: re.Match) -> str:
        name = match.group(2)
        body = "\n".join(TABLES[name].render(name)) + "\n"
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(table, docs)


def pages() -> list[Path]:
    """Every page a marked table may sit in: the README and the docs."""
    return [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for page in pages():
        docs = page.read_text(encoding="utf-8")
        new = rendered(docs)
        if new == docs:
            continue
        stale.append(page)
        if not check:
            page.write_text(new, encoding="utf-8")
    if check and stale:
        names = ", ".join(page.name for page in stale)
        print(f"{names}: a table differs from its results file (python -m benchmarks.tables)")
        return 1
    if not check:
        print(f"tables in {DOCS} made from {RESULTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
