"""One adapter at each quantization: files, memory and speed through lora-tui's engine.

    .venv/bin/python -m benchmarks.quantizations [--quantize none,8da4w,8da8w] [--rounds 3]

On the demo's caches (``lora-tui demo --quantize MODE`` builds each), the ``nobel`` program
answers the same prompt greedily through ``lora-tui bench --json`` (the engine the app
uses), each run in a fresh process. The quantizations take turns round after round, so a
slow spell of the machine hits them alike, and the median over rounds is kept, with each
decode as a ratio to fp32's. The sizes are the files' own. Run it alone; the figures go to
``benchmarks/results/quantizations.json``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks import markdown
from benchmarks.memory import bench
from benchmarks.record import write_results

PROMPT = "Tell me a story about a robot."
PROGRAM = "nobel.pte"


def bench_once(folder: Path, tokens: int) -> dict:
    """One ``lora-tui bench`` process on the folder's program: its adapter's figures."""
    options = ["--max-new-tokens", str(tokens), "--prompt", PROMPT]
    return bench(folder / "foundation.ptd", [folder / PROGRAM], options=options)["adapters"][0]


def main() -> None:
    from lora_tui.demo.build import DemoBuild, demo_folder, demo_quantization

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantize", default="none,8da4w,8da8w", help="comma-separated modes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    builds = {}
    for mode in args.quantize.split(","):
        folder = demo_folder(demo_quantization(mode))
        if not (folder / PROGRAM).is_file():
            raise SystemExit(f"{folder}: no demo build; run lora-tui demo --quantize {mode}")
        builds[DemoBuild(folder, None).manifest.quantized.label] = folder
    runs: dict[str, list[dict]] = {label: [] for label in builds}
    for round_number in range(args.rounds):
        for label, folder in builds.items():
            result = bench_once(folder, args.tokens)
            runs[label].append(result)
            print(
                f"round {round_number + 1} {label:<10} decode {result['decode_tok_s']:6.1f} tok/s"
                f"  TTFT {result['ttft_s']:.3f} s  +{result['true_increment_mib']:.0f} MiB PSS",
                flush=True,
            )
    rows: dict[str, dict] = {}
    for label, results in runs.items():
        folder = builds[label]
        rows[label] = {
            "foundation_mb": round((folder / "foundation.ptd").stat().st_size / 1e6, 1),
            "program_mb": round((folder / PROGRAM).stat().st_size / 1e6, 1),
            "decode_tok_s": round(statistics.median(r["decode_tok_s"] for r in results), 1),
            "ttft_s": round(statistics.median(r["ttft_s"] for r in results), 3),
            "rss_after_load_mib": round(
                statistics.median(r["rss_after_load_mib"] for r in results)
            ),
            "true_cost_mib": round(statistics.median(r["true_increment_mib"] for r in results)),
        }
    if "fp32" in rows:
        fp32 = rows["fp32"]
        for row in rows.values():
            row["decode_vs_fp32"] = round(row["decode_tok_s"] / fp32["decode_tok_s"], 2)
            row["foundation_vs_fp32"] = round(row["foundation_mb"] / fp32["foundation_mb"], 3)
    report = {"program": PROGRAM, "new_tokens": args.tokens, "rounds": args.rounds, "rows": rows}
    write_results("quantizations", report)


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def quantizations_table(report: dict) -> list[str]:
    head = [
        "`nobel`",
        "foundation.ptd",
        "nobel.pte",
        "decode",
        "TTFT",
        "opened alone: +PSS (foundation included)",
    ]
    lines = markdown.head(head)
    for label, row in report["rows"].items():
        lines.append(
            markdown.row(
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


if __name__ == "__main__":
    main()
