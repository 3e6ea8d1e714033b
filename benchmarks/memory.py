"""What each adapter adds to memory, with XNNPACK's weight cache on and off: ``lora-tui
bench --json`` over the demo's programs, once each way, in processes of their own.

    .venv/bin/python -m benchmarks.memory [--quantize MODE | --folder DIR]

``DIR`` is a lora-export folder (default: the demo's of that quantization, which
``lora-tui demo --quantize MODE`` builds; fp32 by default). The
programs load in turn: the base, one adapter, another, and the first adapter again (as the
original C++ demo loads a, b, a). Figures go to ``benchmarks/results/memory[_MODE].json``,
which the docs' tables are made from; run it alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import markdown
from benchmarks.record import write_results


def bench(
    weights: Path, programs: list[Path], share: bool = True, options: Sequence[str] = ()
) -> dict:
    """``lora-tui bench --json`` in a process of its own: its report."""
    command = [sys.executable, "-m", "lora_tui.cli", "bench", "--json", "--weights", str(weights)]
    command += [str(p) for p in programs] + ([] if share else ["--no-share"]) + list(options)
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    from lora_tui.demo.build import DemoBuild, demo_folder, demo_quantization
    from lora_tui.format import QUANTIZE_MODES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--quantize", choices=QUANTIZE_MODES, default="none")
    where.add_argument("--folder", type=Path, help="a lora-export folder (default: the demo's)")
    args = parser.parse_args()
    build = DemoBuild(args.folder or demo_folder(demo_quantization(args.quantize)), None)
    mode = build.manifest.quantized.mode
    base, first, second = build.programs[:3]
    programs = [base, first, second, first]
    report = {
        "folder": build.folder.name,
        "foundation_mib": round(build.weights.stat().st_size / 2**20, 1),
        "max_context": build.manifest.max_context,
        "sharing_on": bench(build.weights, programs, share=True),
        "sharing_off": bench(build.weights, programs, share=False),
    }
    for way in ("sharing_on", "sharing_off"):
        for row in report[way]["adapters"]:
            print(
                f"{way:12} {row['name']:14} +RSS {row['increment_mib']:7.1f} MiB, "
                f"true {row['true_increment_mib']} MiB, {row['decode_tok_s']} tok/s"
            )
    write_results("memory" if mode == "none" else f"memory_{mode}", report)


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


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
    lines = markdown.head(head)
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
        lines.append(markdown.row(cells))
    return lines


if __name__ == "__main__":
    main()
