"""The demo's programs on each adapter's held-out questions, at each quantization, in one
``lora-tui eval`` run over several foundations, and the targets they must meet.

    .venv/bin/python -m benchmarks.demo_eval [--quantize none,8da4w,8da8w] [--out answers.jsonl]

On the demo's caches (``lora-tui demo --quantize none,8da4w,8da8w`` builds them), base.pte,
nobel.pte and executorch.pte of every quantization answer every question of both eval sets
(``lora_tui/demo/assets/eval/``) greedily, up to 128 new tokens (the app's default reply
is longer; the three-step answer needs ~80), one fresh conversation per question. An
answer is right when it contains every keyword of its question and matches its regex.
Prints ``lora-tui eval``'s tables (the last puts each adapter's quantizations side by
side, with the change against fp32), then each foundation's targets: an adapter at least
95% on its own questions and at most 10% on the other's, the base at most 5% on both.
Exits 1 when fp32 misses one (a quantization missing its targets is what the table is
for). Run it alone; the scores go to ``benchmarks/results/demo_eval.json``, which
docs/demo.md's table is made from. ``--out`` keeps every answer, as ``eval --out`` does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import markdown
from benchmarks.record import write_results
from lora_tui.demo.build import DEMO_ADAPTERS, DemoBuild, demo_folder, demo_quantization, eval_set

MAX_NEW_TOKENS = 128
OWN_MIN, OTHER_MAX, BASE_MAX = 95.0, 10.0, 5.0


def target(adapter: str, group: str) -> tuple[str, float]:
    """(">=" or "<=", percent) that ``adapter`` must reach on the questions of ``group``."""
    if adapter == group:
        return ">=", OWN_MIN
    return "<=", BASE_MAX if adapter == "base" else OTHER_MAX


def meets(adapter: str, group: str, right: int, scored: int) -> bool:
    sign, limit = target(adapter, group)
    percent = 100 * right / scored
    return percent >= limit if sign == ">=" else percent <= limit


def eval_command(modes: list[str], out: Path | None) -> list[str]:
    command = [sys.executable, "-m", "lora_tui.cli", "eval"]
    for mode in modes:
        build = DemoBuild(demo_folder(demo_quantization(mode)), None)
        command += ["--weights", str(build.weights), *map(str, build.programs)]
    command += [f"--prompts={eval_set(name)}" for name in DEMO_ADAPTERS]
    command += ["--max-new-tokens", str(MAX_NEW_TOKENS), "--json"]
    return command + (["--out", str(out)] if out else [])


def print_targets(scores: dict[str, dict]) -> dict[str, bool]:
    """Each foundation's line per program and question set; which foundations met all."""
    met = {}
    for label, groups in scores.items():
        print(f"\ntargets, {label}:")
        met[label] = True
        for group, programs in groups.items():
            for program, (right, scored) in programs.items():
                ok = meets(program, group, right, scored)
                met[label] &= ok
                sign, limit = target(program, group)
                print(
                    f"  {program:<11} on {group:<11} {right:>3}/{scored:<3}"
                    f" {100 * right / scored:5.1f}%  target {sign} {limit:.0f}%"
                    f"  {'PASS' if ok else 'FAIL'}"
                )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantize", default="none,8da4w,8da8w")
    parser.add_argument("--out", type=Path, help="append every answer here (JSON Lines)")
    args = parser.parse_args()
    modes = args.quantize.split(",")
    started = time.monotonic()
    # The progress bar goes to stderr; the report is one JSON object on stdout.
    done = subprocess.run(eval_command(modes, args.out), stdout=subprocess.PIPE, text=True)
    if done.returncode:
        return done.returncode
    seconds = time.monotonic() - started
    report = json.loads(done.stdout)
    lone = demo_quantization(modes[0]).label  # one foundation's label is ""
    scores = {label or lone: groups for label, groups in report["by_foundation"].items()}
    met = print_targets(scores)
    write_results(
        "demo_eval",
        {
            "max_new_tokens": MAX_NEW_TOKENS,
            "seconds": round(seconds, 1),
            "answers": len(report["results"]),
            "scores": scores,
            "targets_met": met,
        },
    )
    return 0 if met.get("fp32", True) else 1


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def demo_eval_table(report: dict) -> list[str]:
    """Each quantization's programs on both question sets, the change against fp32 beside
    each score, and whether the row meets its targets."""
    scores = report["scores"]
    programs = ["base", "nobel", "executorch"]
    lines = markdown.head(["questions", "foundation", *(f"`{p}`" for p in programs), "targets"])
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
            lines.append(
                markdown.row([f"{group} ({asked})", label, *cells, "met" if met else "missed"])
            )
    return lines


def ship_choice_table(
    report: dict, speeds: dict, fidelity_8da4w: dict, fidelity_8da8w: dict
) -> list[str]:
    """The README's summary: each quantization's size and speed (``quantizations``), how
    closely it follows fp32 PEFT (``quant_fidelity_MODE``) and what the adapters still
    answer (``demo_eval``, which is ``report``)."""
    fidelity = {"8da4w": fidelity_8da4w, "8da8w": fidelity_8da8w}
    head = ["demo", "foundation.ptd", "decode (`nobel`)", "top-1 agreement with fp32 PEFT"]
    lines = markdown.head([*head, "held-out questions right (`nobel` · `executorch`)"])
    for label, groups in report["scores"].items():
        speed = speeds["rows"][label]
        agreement = "—"
        if label.split()[0] in fidelity:
            rows = fidelity[label.split()[0]]["teacher_forced"]
            own = [f"{r['top1_agreement']:.1%}" for r in rows if r["adapter"] == r["program"]]
            agreement = " · ".join(own)
        right = " · ".join("{}/{}".format(*groups[name][name]) for name in ("nobel", "executorch"))
        size = f"{speed['foundation_mb']:,.1f} MB ({speed.get('foundation_vs_fp32', 1):.2f}×)"
        decode = f"{speed['decode_tok_s']} tok/s ({speed.get('decode_vs_fp32', 1):.2f}×)"
        lines.append(markdown.row([label, size, decode, agreement, f"**{right}**"]))
    return lines


if __name__ == "__main__":
    sys.exit(main())
