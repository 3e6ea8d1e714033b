"""The docs' benchmark tables, made from the files the benchmarks wrote.

    .venv/bin/python -m benchmarks.tables           # rewrite the tables in docs/
    .venv/bin/python -m benchmarks.tables --check   # exit 1 if a table differs from its file

Each table sits, in any page of ``docs/``, between ``<!-- table: NAME -->`` and
``<!-- /table -->``, and is made by ``TABLES[NAME]`` from ``benchmarks/results/NAME.json``;
a test keeps them equal, so no figure in those tables is typed by hand."""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.record import RESULTS_DIR

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"(<!-- table: (\w+) -->\n)(.*?)(<!-- /table -->)", re.S)

THREAD_SETTINGS = {
    "before": "before: OpenMP and XNNPACK a thread per core",
    "OMP_NUM_THREADS=1": "**`OMP_NUM_THREADS=1`, XNNPACK every core (the default now)**",
    "set_num_threads(1)": "`torch.set_num_threads(1)` after torch loads",
    "--threads 1": "`OMP_NUM_THREADS=1`, `--threads 1`",
}
LAYOUTS = {
    "one process": "one process, the panes take turns (`--threads 2`)",
    "a lane per pane": "**a lane per pane, a core each (two panes now)**",
    "two lanes, every core each": "a lane per pane, every core each (not taken)",
}


def threads_table(report: dict) -> list[str]:
    programs = report["programs"]
    modes = [name.removeprefix("nobel ") for name in programs]
    header = ["setting", *(f"{m} {what}" for m in modes for what in ("decode", "TTFT"))]
    lines = _head(header)
    for key, label in THREAD_SETTINGS.items():
        cells = [label]
        for table in programs.values():
            row = table[key]
            cells += [f"{row['decode_tok_s']} tok/s", f"{row['ttft_s']:.3f} s"]
        lines.append(_row(cells))
    return lines


def parallel_panes_table(report: dict) -> list[str]:
    folders = report["folders"]
    header = ["layout"]
    for mode in folders:
        header += [f"{mode} alone", f"{mode} both at once (wall / decode)", f"{mode} second adds"]
    lines = _head(header)
    for key, label in LAYOUTS.items():
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
        lines.append(_row(cells))
    return lines


def program_report_table(report: dict | list) -> list[str]:
    # Files from before provenance hold the rows alone.
    rows = report["programs"] if isinstance(report, dict) else report
    header = [
        "program",
        "delegate calls",
        "kernel calls outside XNNPACK",
        "a layer (each)",
        "XNNPACK operators (transposes)",
    ]
    lines = _head(header)
    for row in rows:
        per_layer = f"{row['delegate_calls_per_layer']} / {row['kernel_calls_per_layer']}"
        name = "/".join(Path(row["program"]).parts[-2:])
        xnnpack = row["xnnpack_operators"]
        operators = f"{sum(xnnpack.values())} ({xnnpack.get('XNNStaticTranspose', 0)})"
        cells = [f"`{name}`", row["delegate_calls"], row["kernel_calls"], per_layer, operators]
        lines.append(_row(cells))
    return lines


# The rows of the per-operator profile: each a label and the ETDump events it sums.
XNN_FP32_GEMM = "XNNPACK Fully Connected (NC, F32) GEMM"
XNN_INT4_GEMM = "XNNPACK Fully Connected (NC, QD8, F32, QB4W) GEMM"
XNN_TRANSPOSE = "XNNPACK Transpose (ND, X32)"
SDPA = "llama::custom_sdpa.out"


def op_profile_table(report: dict) -> list[str]:
    programs = report["programs"]
    header = ["a decode step", *(f"`{label}`" for label in programs)]
    lines = _head(header)

    def summed(row: dict, names: list[str]) -> tuple[float, int]:
        events = [row["events"][n] for n in names if n in row["events"]]
        return sum(e["ms"] for e in events), sum(e["calls"] for e in events)

    def cell(row: dict, names: list[str]) -> str:
        ms, calls = summed(row, names)
        return f"{ms:.2f} ms ({calls})" if calls else "—"

    def xnnpack(row: dict) -> list[str]:
        return [name for name in row["events"] if name.startswith("XNNPACK ")]

    def other_xnnpack(row: dict) -> str:
        rest = [n for n in xnnpack(row) if n not in (XNN_FP32_GEMM, XNN_INT4_GEMM, XNN_TRANSPOSE)]
        return cell(row, rest)

    def delegate_own(row: dict) -> str:
        inside = summed(row, ["DELEGATE_CALL"])
        return f"{inside[0] - summed(row, xnnpack(row))[0]:.2f} ms ({inside[1]} calls)"

    rows: list[tuple[str, Callable[[dict], str]]] = [
        ("**whole step** (tracer off)", lambda r: f"**{r['step_ms_untraced']:.2f} ms**"),
        ("whole step, traced", lambda r: cell(r, ["Method::execute"])),
        ("XNNPACK fp32 GEMMs (calls)", lambda r: cell(r, [XNN_FP32_GEMM])),
        ("XNNPACK int4 GEMMs", lambda r: cell(r, [XNN_INT4_GEMM])),
        ("XNNPACK transposes", lambda r: cell(r, [XNN_TRANSPOSE])),
        ("other XNNPACK operators", other_xnnpack),
        ("delegate calls, beyond their operators", delegate_own),
        ("kernels outside XNNPACK, dispatch included", lambda r: cell(r, ["OPERATOR_CALL"])),
        ("of which `custom_sdpa`", lambda r: cell(r, [SDPA])),
    ]
    for label, make in rows:
        lines.append(_row([label, *(make(row) for row in programs.values())]))
    return lines


def soak_table(report: dict) -> list[str]:
    warm = report["warm_up_turns"]
    rows = [
        ("RSS after load", f"{report['rss_after_load_mib']} MiB"),
        (f"after {warm} warm-up turns", f"{report['rss_after_warm_up_mib']} MiB"),
        (f"after {report['turns']} turns", f"{report['rss_final_mib']} MiB"),
        ("**growth after the warm-up**", f"**{report['growth_after_warm_up_mib']} MiB**"),
        ("the KV cache (the bound)", f"{report['kv_cache_mib']} MiB"),
        ("turns that left old messages out", report["turns_with_context_notices"]),
        ("errors", report["errors"]),
    ]
    lines = _head(["", Path(report["program"]).name])
    return lines + [_row(list(row)) for row in rows]


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
        ("**its first answer**", f"**{report['first_answer_s']} s**"),
        ("every pane ready", f"{report['every_pane_ready_s']} s"),
        (
            "app process RSS, at most during the build",
            f"{report['app_rss_during_build_max_mib']} MiB",
        ),
        ("app process RSS after", f"{report['app_rss_after_mib']} MiB"),
        (f"whole tool RSS / PSS ({report['tool_processes']} processes)", tool),
        ("torch imported by the app process", "yes" if report["app_imported_torch"] else "no"),
    ]
    cache = "an empty cache" if report["cache_was_empty"] else "the build in the cache"
    lines = _head([f"from `lora-tui` starting, {cache}", report["quantize"]])
    return lines + [_row(list(row)) for row in rows]


def decode_vs_peft_table(report: dict) -> list[str]:
    rows = [
        ("ExecuTorch program (XNNPACK, fp32)", f"{report['executorch_tok_s']} tok/s"),
        ("PEFT eager (torch, KV cache, unmerged)", f"{report['peft_eager_tok_s']} tok/s"),
        ("ratio", f"{report['ratio']:.2f}×"),
    ]
    head = f"{report['new_tokens']} new tokens, greedy, same prompt ({report['program']})"
    return _head([head, "decode"]) + [_row(list(r)) for r in rows]


def ui_latency_table(report: dict) -> list[str]:
    what = f"{report['while']} ({', '.join(report['programs'])}, {report['presses']} presses)"
    cells = [what, f"{report['p50_ms']} ms", f"**{report['p95_ms']} ms**", f"{report['max_ms']} ms"]
    return [*_head(["", "p50", "p95", "max"]), _row(cells)]


def memory_table(report: dict) -> list[str]:
    head = [
        "program",
        "sharing on: RSS after load",
        "+RSS",
        "**true cost (+PSS)**",
        "LoRA + KV",
        "check",
        "load",
        "decode",
        "sharing off: +RSS",
        "sharing off: true cost",
    ]
    lines = _head(head)
    pairs = zip(report["sharing_on"]["adapters"], report["sharing_off"]["adapters"], strict=True)
    for on, off in pairs:
        own = (on["adapter_weights_mib"] or 0) + (on["kv_cache_mib"] or 0)
        cells = [
            on["name"],
            f"{on['rss_after_load_mib']:,.0f} MiB",
            f"{on['increment_mib']:+.0f} MiB",
            f"**{on['true_increment_mib']:+.0f} MiB**",
            f"{own:.1f} MiB",
            f"{on['check_s']:.2f} s",
            f"{on['load_s']:.2f} s",
            f"{on['decode_tok_s']} tok/s",
            f"{off['increment_mib']:+.0f} MiB",
            f"{off['true_increment_mib']:+.0f} MiB",
        ]
        lines.append(_row(cells))
    return lines


def export_bench_table(report: dict) -> list[str]:
    lines = _head(["", "total", "its phases"])
    for title, run in report["runs"].items():
        slow = sorted(run["phases_s"].items(), key=lambda item: -item[1])[:3]
        phases = ", ".join(f"{name} {seconds} s" for name, seconds in slow)
        lines.append(_row([title, f"**{run['total_s']} s**", phases]))
    return lines


def llama32_1b_shape_table(report: dict) -> list[str]:
    first, second = report["adapters"]
    budget = 1.5 * (second["adapter_weights_mib"] + second["kv_cache_mib"])
    rows = [
        ("first export (foundation + template + `a.pte`)", f"{report['first_export_s']} s", ""),
        (
            "exporter's peak RSS (`ru_maxrss` of the `lora-export` process)",
            f"**{report['first_export_peak_gib']} GiB**",
            "≤ 12 GiB",
        ),
        (
            "adding the second adapter (`lora-export` again, a template fill)",
            f"**{report['add_adapter_s']} s** (peak RSS {report['add_adapter_peak_gib']} GiB)",
            "≤ 60 s",
        ),
        (
            "`foundation.ptd` / each `.pte`",
            f"{report['foundation_gb']} GB / {report['program_mb']} MB",
            "",
        ),
        (
            "first program loaded (`lora-tui bench`)",
            f"+{first['increment_mib']:.0f} MiB RSS, +{first['true_increment_mib']:.0f} MiB PSS",
            "",
        ),
        (
            "**second program: true (PSS) added cost**",
            f"**+{second['true_increment_mib']:.1f} MiB** (RSS +{second['increment_mib']:.0f} MiB)",
            f"≤ 1.5 × (LoRA {second['adapter_weights_mib']:.1f} + KV {second['kv_cache_mib']:.1f})"
            f" = {budget:.1f} MiB",
        ),
        (
            "pre-flight / load of the second program",
            f"{second['check_s']:.1f} s / {second['load_s']:.1f} s",
            "",
        ),
        (
            "decode, 32 new tokens",
            " and ".join(f"{a['decode_tok_s']:.2f}" for a in report["adapters"]) + " tok/s",
            "",
        ),
        (
            "time to first token",
            " and ".join(f"{a['ttft_s']:.2f} s" for a in report["adapters"]),
            "",
        ),
    ]
    return _head(["", "measured", "target"]) + [_row(list(row)) for row in rows]


def quantizations_table(report: dict) -> list[str]:
    head = [
        "`nobel`",
        "foundation.ptd",
        "nobel.pte",
        "decode",
        "TTFT",
        "opened alone: +PSS (foundation included)",
    ]
    lines = _head(head)
    for label, row in report["rows"].items():
        lines.append(
            _row(
                [
                    label,
                    f"{row['foundation_mb']:,.1f} MB ({row.get('foundation_vs_fp32', 1):.2f}×)",
                    f"{row['program_mb']:.1f} MB",
                    f"**{row['decode_tok_s']} tok/s** ({row.get('decode_vs_fp32', 1):.2f}×)",
                    f"{row['ttft_s']:.3f} s",
                    f"+{row['true_cost_mib']:,} MiB",
                ]
            )
        )
    return lines


def quant_fidelity_table(report: dict) -> list[str]:
    mode = report["quantization"]
    head = [
        "fp32 PEFT adapter",
        "program",
        "top-1 agreement",
        "mean KL",
        "positions",
        "the adapter's eval questions right",
    ]
    lines = _head(head)
    for row in report["teacher_forced"]:
        adapter, program = row["adapter"], row["program"]
        agreement = f"{row['top1_agreement']:.1%}"
        right, asked = report["eval"][adapter][program]
        if program == adapter:
            agreement, right = f"**{agreement}**", f"**{right}**"
        cells = [f"`{adapter}`", f"`{program}` {mode}", agreement, f"{row['mean_kl']:.3f}"]
        lines.append(_row([*cells, row["positions"], f"{right}/{asked}"]))
    return lines


def demo_eval_table(report: dict) -> list[str]:
    """Each quantization's programs on both question sets, the change against fp32 beside
    each score, and whether the row meets its targets."""
    from benchmarks.demo_eval import meets

    scores = report["scores"]
    programs = ["base", "nobel", "executorch"]
    lines = _head(["questions", "foundation", *(f"`{p}`" for p in programs), "targets"])
    for label, groups in scores.items():
        for group, row in groups.items():
            cells = []
            for program in programs:
                right, scored = row[program]
                cell = f"{right}/{scored}"
                if program == group:
                    cell = f"**{cell} ({100 * right / scored:.1f}%)**"
                reference = scores.get("fp32", {}).get(group, {}).get(program)
                if label != "fp32" and reference is not None:
                    cell += f" ({right - reference[0]:+d})"
                cells.append(cell)
            met = all(meets(p, group, *row[p]) for p in programs)
            asked = row[programs[0]][1]
            lines.append(_row([f"{group} ({asked})", label, *cells, "met" if met else "missed"]))
    return lines


def ship_choice_table(report: dict) -> list[str]:
    """The README's summary: each quantization's size and speed (``quantizations``), how
    closely it follows fp32 PEFT (``quant_fidelity_MODE``) and what the adapters still
    answer (``demo_eval``, which is ``report``)."""
    speeds = json.loads((RESULTS_DIR / "quantizations.json").read_text(encoding="utf-8"))
    head = ["demo", "foundation.ptd", "decode (`nobel`)", "top-1 agreement with fp32 PEFT"]
    lines = _head([*head, "held-out questions right (`nobel` · `executorch`)"])
    for label, groups in report["scores"].items():
        speed = speeds["rows"][label]
        fidelity = RESULTS_DIR / f"quant_fidelity_{label.split()[0]}.json"
        agreement = "—"
        if label != "fp32" and fidelity.is_file():
            rows = json.loads(fidelity.read_text(encoding="utf-8"))["teacher_forced"]
            own = [f"{r['top1_agreement']:.1%}" for r in rows if r["adapter"] == r["program"]]
            agreement = " · ".join(own)
        right = " · ".join("{}/{}".format(*groups[name][name]) for name in ("nobel", "executorch"))
        size = f"{speed['foundation_mb']:,.1f} MB ({speed.get('foundation_vs_fp32', 1):.2f}×)"
        decode = f"{speed['decode_tok_s']} tok/s ({speed.get('decode_vs_fp32', 1):.2f}×)"
        lines.append(_row([label, size, decode, agreement, f"**{right}**"]))
    return lines


def ray_sweep_table(report: dict) -> list[str]:
    runs = report["runs"]
    local = next(iter(runs.values()))["answers_per_s"]
    lines = _head(["", "answers", "wall time", "answers/s", "against the local eval"])
    for label, run in runs.items():
        ratio = f"{run['answers_per_s'] / local:.2f}×"
        cells = [label, run["answers"], f"{run['seconds']} s", run["answers_per_s"], ratio]
        lines.append(_row(cells))
    return lines


def ray_resume_table(report: dict) -> list[str]:
    same = "yes" if report["same_scores_as_local"] else "**no**"
    rows = [
        ("answers in the sweep (3 programs × 116 questions)", report["answers"]),
        ("saved when the driver was killed (SIGKILL)", report["saved_before_kill"]),
        ("lines in the file after `--resume`", report["lines"]),
        ("distinct (prompt, program SHA-256, settings)", report["distinct"]),
        ("`--resume` run, cluster start included", f"{report['resume_s']} s"),
        ("scores the same as the local run's (`demo_eval.json`, fp32)", same),
    ]
    return _head(["", ""]) + [_row(list(row)) for row in rows]


VS_LLAMACPP_RATIOS = [  # (what, ours, theirs, target): issue 26's decode targets
    ("8da4w decode / llama.cpp Q4_1 + LoRA", "lora-tui 8da4w", "llama.cpp Q4_1 + LoRA", 1.5),
    ("fp32 decode / llama.cpp F32 + LoRA", "lora-tui fp32", "llama.cpp F32 + LoRA", 1.0),
    ("fp32 decode / PEFT eager", "lora-tui fp32", "PEFT eager", 3.0),
    ("engine / bare loop, 8da4w", "lora-tui 8da4w", "  bare forward loop, 8da4w", 0.9),
    ("engine / bare loop, fp32", "lora-tui fp32", "  bare forward loop, fp32", 0.9),
    ("lora-export / export_llm program, 8da4w", "lora-tui 8da4w", "export_llm 8da4w", 0.95),
    ("lora-export / export_llm program, fp32", "lora-tui fp32", "export_llm fp32", 0.95),
    ("two panes / one pane, 8da4w", "lora-tui 8da4w, two panes", "lora-tui 8da4w", 1.4),
    ("two panes / one pane, fp32", "lora-tui fp32, two panes", "lora-tui fp32", 1.1),
]


def vs_llamacpp_table(report: dict) -> list[str]:
    rows = report["rows"]
    lines = _head(["", "decode tok/s", "prefill tok/s", "TTFT"])
    for name, speed in rows.items():
        label = f"**{name}**" if name.startswith("lora-tui") else name.strip()
        prefill = speed["prompt_tokens"] / speed["ttft_s"]
        cells = [label, f"{speed['decode_tok_s']:.1f}", f"{prefill:.1f}"]
        lines.append(_row([*cells, f"{speed['ttft_s'] * 1000:.0f} ms"]))
    for what, ours, theirs, target in VS_LLAMACPP_RATIOS:
        ratio = rows[ours]["decode_tok_s"] / rows[theirs]["decode_tok_s"]
        verdict = "met" if ratio >= target else "**missed**"
        lines.append(_row([f"{what} (target ≥ {target}×)", f"{ratio:.2f}×: {verdict}", "", ""]))
    return lines


def speed_summary_table(report: dict) -> list[str]:
    """The README's summary of ``vs_llamacpp``: decode per quantization, one pane and two,
    beside export_llm's program of the same adapter and llama.cpp with the same LoRA."""
    rows = report["rows"]
    runs = {  # label: the rows at 8da4w and at fp32
        "lora-tui, one pane": ("lora-tui 8da4w", "lora-tui fp32"),
        "lora-tui, two panes at once (summed)": (
            "lora-tui 8da4w, two panes",
            "lora-tui fp32, two panes",
        ),
        "`export_llm`'s program of the same adapter, same engine": (
            "export_llm 8da4w",
            "export_llm fp32",
        ),
        "llama.cpp with the same LoRA": ("llama.cpp Q4_1 + LoRA", "llama.cpp F32 + LoRA"),
    }
    lines = _head(["decode, tok/s", "8da4w (llama.cpp: Q4_1)", "fp32 (llama.cpp: F32)"])
    for label, keys in runs.items():
        lines.append(_row([label, *(f"{rows[key]['decode_tok_s']:.1f}" for key in keys)]))
    return lines


def decode_op_costs_table(report: dict) -> list[str]:
    base, int4, lora = report["base_ms"], report["int4_linears_ms"], report["lora_pairs_ms"]
    nobel = base + report["nobel_minus_base_ms"]
    rest = nobel - int4 - lora
    rows = [
        ("whole `nobel.pte` (r=16 on all seven projections), position 40", f"{nobel:.2f}"),
        (
            f"its int4 linears: 210 in the layers + `lm_head` ({report['lm_head_ms']:.2f})",
            f"{int4:.2f} ({int4 / nobel:.0%})",
        ),
        ("its 210 LoRA pairs (fp32)", f"{lora:.2f} ({lora / nobel:.0%})"),
        ("**everything else**", f"**{rest:.2f} ({rest / nobel:.0%})**"),
        ("`base.pte` (the same graph, every LoRA B zero)", f"{base:.2f}"),
    ]
    return _head(["part of one decode step", "ms"]) + [_row(list(row)) for row in rows]


FUZZ_VERDICTS = {
    "rejected": "rejected in one line",
    "crashed a child": "crashed a pre-flight child, rejected in one line",
    "loaded": "loaded and ran (bits flipped in weight values)",
    "took down healthy": "**took down the healthy adapters**",
    "hung": "**hung**",
}


DAMAGE_KINDS = {"delegate": "delegate blob", "named-data": "LoRA weights", "cut": "cut short"}


def fuzz_programs_table(report: dict) -> list[str]:
    lines = _head(["outcome", "copies", "by kind of damage"])
    for verdict, label in FUZZ_VERDICTS.items():
        row = report["verdicts"][verdict]
        kinds = ", ".join(f"{DAMAGE_KINDS.get(k, k)} {n}" for k, n in row["by_kind"].items())
        copies = f"**{row['copies']}**" if label.startswith("**") else row["copies"]
        lines.append(_row([label, copies, kinds]))
    return lines


INPUT_KINDS = {
    "manifest": "`manifest.json`",
    "adapter_config": "`adapter_config.json`",
    "config": "base `config.json`",
    "gguf": "GGUF header",
    "tokenizer": "`tokenizer.json`, `tokenizer_config.json`",
    "prompts": "prompt set (`.jsonl`)",
    "results": "results file (`.jsonl`)",
}
INPUT_VERDICTS = ("refused in one line", "handled", "traceback", "hang", "out of memory")


def fuzz_inputs_table(report: dict) -> list[str]:
    header = [
        "input",
        "read by",
        "cases",
        *INPUT_VERDICTS[:2],
        *(f"**{v}**" for v in INPUT_VERDICTS[2:]),
    ]
    lines = _head(header)
    for kind, entry in report["kinds"].items():
        commands = ", ".join(f"`{c}`" for c in entry["by_command"])
        counts = [entry["verdicts"][v] for v in INPUT_VERDICTS]
        lines.append(_row([INPUT_KINDS.get(kind, kind), commands, entry["cases"], *counts]))
    totals = [report["totals"][v] for v in INPUT_VERDICTS]
    cases = sum(entry["cases"] for entry in report["kinds"].values())
    lines.append(_row(["**total**", "", cases, *totals[:2], *(f"**{n}**" for n in totals[2:])]))
    return lines


TABLES: dict[str, Callable[..., list[str]]] = {
    "demo_eval": demo_eval_table,
    "ship_choice": ship_choice_table,
    "ray_sweep": ray_sweep_table,
    "ray_resume": ray_resume_table,
    "fuzz_programs": fuzz_programs_table,
    "fuzz_inputs": fuzz_inputs_table,
    "decode_op_costs": decode_op_costs_table,
    "vs_llamacpp": vs_llamacpp_table,
    "speed_summary": speed_summary_table,
    "quantizations": quantizations_table,
    "quant_fidelity_8da4w": quant_fidelity_table,
    "quant_fidelity_8da8w": quant_fidelity_table,
    "llama32_1b_shape": llama32_1b_shape_table,
    "export_bench": export_bench_table,
    "memory": memory_table,
    "memory_8da4w": memory_table,
    "ui_latency": ui_latency_table,
    "ui_latency_idle": ui_latency_table,
    "decode_vs_peft": decode_vs_peft_table,
    "first_run": first_run_table,
    "first_run_8da4w": first_run_table,
    "first_run_8da8w": first_run_table,
    "first_run_warm": first_run_table,
    "threads": threads_table,
    "parallel_panes": parallel_panes_table,
    "program_report": program_report_table,
    "op_profile": op_profile_table,
    "soak": soak_table,
}


# A table made from another table's results file (it may read others beside it).
SOURCES = {"ship_choice": "demo_eval", "speed_summary": "vs_llamacpp"}


def _head(cells: list) -> list[str]:
    """A table's header row and the rule under it."""
    return [_row(cells), _row(["---"] * len(cells))]


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def rendered(docs: str) -> str:
    """``docs`` with every marked table made again from its results file."""

    def table(match: re.Match) -> str:
        name = match.group(2)
        source = RESULTS_DIR / f"{SOURCES.get(name, name)}.json"
        report = json.loads(source.read_text(encoding="utf-8"))
        body = "\n".join(TABLES[name](report)) + "\n"
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(table, docs)


def pages() -> list[Path]:
    """Every page a marked table may sit in: the README and the docs."""
    return [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]


def main() -> int:
    stale = []
    for page in pages():
        docs = page.read_text(encoding="utf-8")
        new = rendered(docs)
        if new == docs:
            continue
        stale.append(page)
        if "--check" not in sys.argv[1:]:
            page.write_text(new, encoding="utf-8")
    if "--check" in sys.argv[1:] and stale:
        names = ", ".join(page.name for page in stale)
        print(f"{names}: a table differs from its results file (python -m benchmarks.tables)")
        return 1
    if "--check" not in sys.argv[1:]:
        print(f"tables in {DOCS} made from {RESULTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
