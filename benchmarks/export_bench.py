"""Time lora-export on the real SmolLM2-135M-Instruct with one r=16 adapter on every projection.

    .venv/bin/python -m benchmarks.export_bench [--work DIR]

Prints each phase's time: a first export (foundation + adapter), then adding a second
adapter to the same folder, and writes them to ``benchmarks/results/export_bench.json``.
The adapters have random weights; the timing does not depend on their values. The
package ships this base's template at this shape (``exporter/prebuilt.py``); the benchmark
leaves it out and lowers, as any other base or shape is exported.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import markdown
from benchmarks.record import write_results
from exporter import prebuilt
from exporter.pipeline import DEFAULT_MAX_CONTEXT, ExportRequest, run_export
from exporter.smollm2 import fetch_smollm2_gguf

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_adapter(gguf: Path, directory: Path, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.01)
    peft_model.save_pretrained(directory)
    return directory


def report(title: str, seconds: dict[str, float], total: float) -> None:
    print(f"\n{title}: {total:.1f} s")
    for phase, value in seconds.items():
        print(f"  {phase:<24} {value:7.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for downloads and outputs")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="export-bench-"))
    gguf = fetch_smollm2_gguf(work / "model")
    first = make_adapter(gguf, work / "adapter_a", seed=1)
    second = make_adapter(gguf, work / "adapter_b", seed=2)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)

    prebuilt.LOWERED_DIR = work / "nothing-shipped"  # measure the lowering itself
    runs = {}
    for title, name, adapter in (
        ("first export (foundation + 1 adapter)", "a", first),
        ("adding a second adapter", "b", second),
    ):
        started = time.perf_counter()
        result = run_export(ExportRequest(base=gguf, adapters=[(name, adapter)], out=out))
        total = time.perf_counter() - started
        report(title, result.phase_seconds, total)
        phases = {phase: round(value, 1) for phase, value in result.phase_seconds.items()}
        runs[title] = {"total_s": round(total, 1), "phases_s": phases}
    write_results("export_bench", {"max_context": DEFAULT_MAX_CONTEXT, "runs": runs})


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def export_bench_table(report: dict) -> list[str]:
    lines = markdown.head(["", "total", "its phases"])
    for title, run in report["runs"].items():
        slow = sorted(run["phases_s"].items(), key=lambda item: -item[1])[:3]
        phases = ", ".join(f"{name} {seconds} s" for name, seconds in slow)
        lines.append(markdown.row([title, f"**{run['total_s']} s**", phases]))
    return lines


if __name__ == "__main__":
    main()
