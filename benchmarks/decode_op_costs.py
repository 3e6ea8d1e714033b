"""Where an 8da4w decode step's time goes, without an event tracer: each shape of linear in
the base (SmolLM2-135M in the demo), lowered as lora-export lowers it and timed per call.

    .venv/bin/python -m benchmarks.decode_op_costs [--folder DIR] [--calls N] [--rounds R]

The pip wheel's runtime has no ETDump event tracer, so a per-op profile of the real program
is not available. Instead each shape of linear in a decode step gets a program of its own,
holding as many copies of it (own weights each) as the model has, so the weights stream
from memory as they do there. It is built with the same source transform (ExecuTorch's
8da4w, group 32) and the same XNNPACK partitioners as the real program, with the same
dynamic token dimension, and called on one token until about N linears have run. The cost
of one call of a program that only doubles its input is subtracted, so what is left is
the linears' own time inside the runtime and XNNPACK. Multiplied by how often a step runs
each, and set against whole programs from DIR (default: the 8da4w demo's
cache), this splits one decode step into: int4 linears, the LoRA linears, and the rest
(RMSNorm, RoPE, the KV-cache update, attention, the delegate boundaries between them).
Each figure is the median of R rounds, the programs interleaved; they go to
``benchmarks/results/decode_op_costs.json``. Run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from benchmarks import markdown
from benchmarks.record import write_results
from exporter.base import PROJECTIONS
from exporter.lower import quantize_model, xnnpack_partitioners
from lora_tui.demo.build import demo_folder, demo_quantization
from lora_tui.engine.loading import load_module, position_input, token_input
from lora_tui.format import Manifest, projection_features

EIGHT_DA_FOUR_W = demo_quantization("8da4w")


class Linears(torch.nn.Module):
    """``copies`` linears of one shape with their own weights, all applied to the input: as
    many as the model has, so their weights stream from memory as the model's do instead of
    staying in cache. With ``rank``, each is a LoRA pair (A then B), fp32 as in every 8da4w
    program."""

    def __init__(self, in_features: int, out_features: int, copies: int, rank: int | None = None):
        super().__init__()

        def one() -> torch.nn.Module:
            if rank is None:
                return torch.nn.Linear(in_features, out_features, bias=False)
            return torch.nn.Sequential(
                torch.nn.Linear(in_features, rank, bias=False),
                torch.nn.Linear(rank, out_features, bias=False),
            )

        self.copies = torch.nn.ModuleList(one() for _ in range(copies))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(linear(x) for linear in self.copies)


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0


def lower(module: torch.nn.Module, in_features: int, quantized: bool, out: Path) -> Path:
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    torch.manual_seed(0)
    for parameter in module.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    if quantized:
        module = quantize_model(module, EIGHT_DA_FOUR_W)
    example = (torch.randn(1, 3, in_features),)
    dynamic = ({1: torch.export.Dim("token_dim", max=127)},)
    exported = torch.export.export(module.eval(), example, dynamic_shapes=dynamic, strict=False)
    edge = to_edge_transform_and_lower(
        exported,
        partitioner=xnnpack_partitioners(EIGHT_DA_FOUR_W),  # LoRA's fp32 pairs too, as there
        compile_config=EdgeCompileConfig(_check_ir_validity=False, _skip_dim_order=True),
    )
    out.write_bytes(edge.to_executorch().buffer)
    return out


def time_calls(program, inputs: list, calls: int) -> float:
    """Seconds per forward call."""
    program.forward(inputs)
    started = time.perf_counter()
    for _ in range(calls):
        program.forward(inputs)
    return (time.perf_counter() - started) / calls


Case = tuple[int, int, object, list]  # copies in the program, runs per decode step, it, inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=demo_folder(demo_quantization("8da4w")))
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = args.folder
    if not all((folder / name).is_file() for name in ("base.pte", "nobel.pte", "foundation.ptd")):
        raise SystemExit(f"{folder}: no 8da4w demo build here; run lora-tui demo --quantize 8da4w")
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as scratch:
        cases = lower_cases(Manifest.read(folder), Path(scratch))
        whole = {}
        for name in ("base.pte", "nobel.pte"):
            whole[name] = load_module(folder / name, folder / "foundation.ptd")
            whole[name].forward([token_input(list(range(1, 41))), position_input(0)])
        median = time_all(cases, whole, args.rounds, args.calls)
    write_results("decode_op_costs", print_costs(folder, cases, median))


def lower_cases(manifest: Manifest, work: Path) -> dict[str, Case]:
    """Each kind of linear one decode step runs, alone in a program of its own: the base's
    shape and the adapter's rank and targets come from the folder's manifest."""
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    shape, adapter = manifest.shape, manifest.programs["nobel"]
    dim, layers, rank = shape["dim"], shape["n_layers"], adapter.rank
    # (in, out) -> how many linears of that shape one layer runs
    layer_linears = Counter(projection_features(shape, p) for p in PROJECTIONS)
    lora_pairs = Counter(projection_features(shape, p) for p in adapter.target_modules)
    cases: dict[str, Case] = {}

    def add(name: str, per_token: int, module: torch.nn.Module, in_f: int, quant: bool) -> None:
        pte = lower(module, in_f, quant, work / f"{len(cases)}.pte")
        copies = len(getattr(module, "copies", [module]))
        program = _load_for_executorch(str(pte))
        cases[name] = (copies, per_token, program, [torch.randn(1, 1, in_f)])
        print(f"lowered {name}", flush=True)

    add("call overhead (x * 2)", 0, Double(), dim, False)
    for (in_f, out_f), per_layer in layer_linears.items():
        linears = Linears(in_f, out_f, layers)
        add(f"int4 linear {in_f}->{out_f}", per_layer * layers, linears, in_f, True)
    for (in_f, out_f), per_layer in lora_pairs.items():
        pairs = Linears(in_f, out_f, layers, rank)
        add(f"LoRA r{rank} {in_f}->{out_f}", per_layer * layers, pairs, in_f, False)
    vocab = shape["vocab_size"]
    add(f"int4 lm_head {dim}->{vocab}", 1, Linears(dim, vocab, 1), dim, True)
    return cases


def time_all(
    cases: dict[str, Case], whole: dict[str, object], rounds: int, calls: int
) -> dict[str, float]:
    """Median seconds a call, interleaving every case and the whole programs each round."""
    samples: dict[str, list[float]] = {name: [] for name in [*cases, *whole]}
    for _ in range(rounds):
        for name, (copies, _, program, inputs) in cases.items():
            samples[name].append(time_calls(program, inputs, max(calls // copies, 10)))
        for name, program in whole.items():
            # One position over and over: the cache write and attention cost what they
            # cost at position 40.
            inputs = [token_input([7]), position_input(40)]
            samples[name].append(time_calls(program, inputs, calls // 30))
    return {name: statistics.median(values) for name, values in samples.items()}


def print_costs(folder: Path, cases: dict[str, Case], median: dict[str, float]) -> dict:
    """Print each part's cost a decode step; returns them, in milliseconds."""
    overhead = median.pop("call overhead (x * 2)")
    print(f"\nper-call overhead subtracted: {overhead * 1e6:.1f} us")
    print(f"{'op':<28}{'us each':>9}{'per token':>11}{'ms/token':>10}")
    totals = {"int4": 0.0, "LoRA": 0.0}
    each_s: dict[str, float] = {}
    for name, (copies, per_token, _, _) in cases.items():
        if per_token == 0:
            continue
        each = each_s[name] = max(median[name] - overhead, 0.0) / copies
        totals[name.split()[0]] += each * per_token
        print(f"{name:<28}{each * 1e6:>9.1f}{per_token:>11}{each * per_token * 1e3:>10.2f}")
    base, nobel = median["base.pte"] - overhead, median["nobel.pte"] - overhead
    int4, lora = totals["int4"], totals["LoRA"]
    print(f"\n{folder.name}: base.pte {base * 1e3:.2f} ms a token, nobel.pte {nobel * 1e3:.2f} ms")
    print(f"  int4 linears, measured alone: {int4 * 1e3:.2f} ms ({int4 / base:.0%} of base.pte)")
    print(f"  the rest of base.pte: {(base - int4) * 1e3:.2f} ms ({1 - int4 / base:.0%})")
    print(
        f"  LoRA pairs alone: {lora * 1e3:.2f} ms;"
        f" nobel.pte - base.pte: {(nobel - base) * 1e3:.2f} ms"
    )
    lm_head_s = next(each for name, each in each_s.items() if "lm_head" in name)
    return {
        "folder": folder.name,
        "overhead_us": round(overhead * 1e6, 1),
        "base_ms": round(base * 1e3, 2),
        "int4_linears_ms": round(int4 * 1e3, 2),
        "lm_head_ms": round(lm_head_s * 1e3, 2),
        "nobel_minus_base_ms": round((nobel - base) * 1e3, 2),
        "lora_pairs_ms": round(lora * 1e3, 2),
    }


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


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
    return markdown.head(["part of one decode step", "ms"]) + [
        markdown.row(list(row)) for row in rows
    ]


if __name__ == "__main__":
    main()
