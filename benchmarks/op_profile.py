"""Where a decode step's time goes, operator by operator: ExecuTorch's event tracer (ETDump)
over real programs, read with its ``Inspector``.

    .venv/bin/python -m benchmarks.op_profile LABEL=FOLDER/NAME.pte [LABEL=...] [--steps 32]

ExecuTorch's runtime has the event tracer from 1.5.1 (the pinned version; 1.4.1's had
none). This benchmark imports nothing of lora_tui's but the results writer. Each program,
over the ``foundation.ptd`` beside it: a 32-token prefill, then ``--steps`` decode steps;
every event's time is averaged over the decode steps. The tracer times each XNNPACK
operator inside a delegate call, and each kernel the runtime runs outside one. The whole
step is also timed with the tracer off, the programs taking turns for ``--rounds`` rounds
(the median), so they compare side by side. The figures go to
``benchmarks/results/op_profile.json``.
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import torch

from benchmarks import markdown
from benchmarks.record import write_results

PREFILL = 32


def run_steps(module, steps: int) -> float:
    """Prefill, then ``steps`` decode steps; the mean decode step in ms."""
    module.forward([torch.tensor([list(range(1, PREFILL + 1))]), torch.tensor([0])])
    started = time.perf_counter()
    for step in range(steps):
        module.forward([torch.tensor([[100 + step]]), torch.tensor([PREFILL + step])])
    return (time.perf_counter() - started) / steps * 1000


def load(pte: Path, traced: bool):
    import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (custom_sdpa)
    import executorch.kernels.quantized  # noqa: F401  (8da4w embeddings)
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    ptd = str(pte.parent / "foundation.ptd")
    return _load_for_executorch(str(pte), data_path=ptd, enable_etdump=traced)


def untraced_medians(programs: dict[str, Path], steps: int, rounds: int) -> dict[str, float]:
    """Each program's decode step with the tracer off, taking turns; medians in ms."""
    modules = {label: load(pte, traced=False) for label, pte in programs.items()}
    times: dict[str, list[float]] = {label: [] for label in programs}
    for _ in range(rounds):
        for label, module in modules.items():
            times[label].append(run_steps(module, steps))
    return {label: statistics.median(ms) for label, ms in times.items()}


def profile(pte: Path, steps: int) -> dict[str, object]:
    from executorch.devtools import Inspector

    module = load(pte, traced=True)
    traced_ms = run_steps(module, steps)
    with tempfile.TemporaryDirectory() as folder:
        etdump = f"{folder}/profile.etdp"
        module.write_etdump_result_to_file(etdump, None)
        block = next(b for b in Inspector(etdump_path=etdump).event_blocks if b.name == "Execute")
    times: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    for event in block.events:
        if not event.perf_data:
            continue
        decode = event.perf_data.raw[1:]  # the first run is the prefill
        name = ("XNNPACK " if event.is_delegated_op else "") + re.sub(r" #\d+$", "", event.name)
        times[name] += sum(decode) / len(decode)
        calls[name] += 1
    return {
        "program": str(pte),
        "steps": steps,
        "step_ms_traced": round(traced_ms, 3),
        "events": {
            name: {"ms": round(ms, 4), "calls": calls[name]} for name, ms in times.most_common()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("programs", nargs="+", help="LABEL=PATH.pte, the foundation beside it")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    paths = {label: Path(path) for label, _, path in (p.partition("=") for p in args.programs)}
    report: dict[str, object] = {
        "runtime": f"executorch {version('executorch')}",
        "rounds": args.rounds,
    }
    untraced = untraced_medians(paths, args.steps, args.rounds)
    programs = {}
    for label, pte in paths.items():
        row = profile(pte, args.steps)
        row["step_ms_untraced"] = round(untraced[label], 3)
        programs[label] = row
        print(
            f"{label}: a decode step {row['step_ms_untraced']:.2f} ms "
            f"({row['step_ms_traced']:.2f} ms traced)"
        )
        for name, event in list(row["events"].items())[:12]:  # type: ignore[union-attr]
            print(f"  {event['ms']:8.3f} ms  {event['calls']:5d}  {name}")
    report["programs"] = programs
    write_results("op_profile", report)
    return 0


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


# The rows of the per-operator profile: each a label and the ETDump events it sums.
XNN_FP32_GEMM = "XNNPACK Fully Connected (NC, F32) GEMM"


XNN_INT4_GEMM = "XNNPACK Fully Connected (NC, QD8, F32, QB4W) GEMM"


XNN_TRANSPOSE = "XNNPACK Transpose (ND, X32)"


SDPA = "llama::custom_sdpa.out"


def op_profile_table(report: dict) -> list[str]:
    programs = report["programs"]
    header = ["a decode step", *(f"`{label}`" for label in programs)]
    lines = markdown.head(header)

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
        lines.append(markdown.row([label, *(make(row) for row in programs.values())]))
    return lines


if __name__ == "__main__":
    sys.exit(main())
