"""What a program runs per decode step: delegate calls and the operators left outside any
delegate, in total and per layer.

    .venv/bin/python -m benchmarks.program_report PROGRAM.pte [PROGRAM.pte ...]

Reads each program's ``forward`` plan (``deserialize_pte_binary``; nothing is run) and
counts its instructions: each ``DelegateCall`` is one call into XNNPACK, each
``KernelCall`` one portable or custom kernel run by the ExecuTorch runtime itself. It also
counts the operators inside the XNNPACK graphs, read with the ``flatc`` ExecuTorch ships. Kernels
outside the delegate cost a dispatch each and run single-threaded unless they are written
to use the pool, so they are where graph rewrites can win. Per-layer figures divide by the
layer count the manifest (or ``--layers``) gives. The figures go to
``benchmarks/results/program_report.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.record import write_results


def read_program(pte: Path):
    from executorch.exir._serialize._program import deserialize_pte_binary

    return deserialize_pte_binary(pte.read_bytes()).program


def forward_plan(program):
    return next(plan for plan in program.execution_plan if plan.name == "forward")


def xnnpack_operators(program) -> dict[str, int]:
    """How many of each operator the program's XNNPACK graphs hold (``XNNStaticTranspose``…)."""
    import executorch.exir
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader

    package = Path(executorch.exir.__file__).parent.parent
    flatc = package / "data" / "bin" / "flatc"
    schema = package / "backends" / "xnnpack" / "serialization" / "schema.fbs"
    plan = forward_plan(program)
    operators: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as folder:
        for index, delegate in enumerate(plan.delegates):
            blob = program.backend_delegate_data[delegate.processed.index].data
            header = XNNHeader.from_bytes(blob[: XNNHeader.EXPECTED_LENGTH])
            start = header.flatbuffer_offset
            graph = Path(folder) / f"graph{index}.bin"
            graph.write_bytes(blob[start : start + header.flatbuffer_size])
            command = [flatc, "--json", "--strict-json", "--raw-binary", "-o", folder, schema]
            subprocess.run([*map(str, command), "--", str(graph)], check=True)
            nodes = json.loads(graph.with_suffix(".json").read_text())["xnodes"]
            operators.update(node["xnode_union_type"] for node in nodes)
    return dict(operators.most_common())


def report(pte: Path, layers: int | None) -> dict[str, object]:
    from executorch.exir.schema import DelegateCall, KernelCall

    program = read_program(pte)  # 20 MB and more: read and parsed once
    plan = forward_plan(program)
    kernels: collections.Counter[str] = collections.Counter()
    delegate_calls = 0
    for chain in plan.chains:
        for instruction in chain.instructions:
            call = instruction.instr_args
            if isinstance(call, DelegateCall):
                delegate_calls += 1
            elif isinstance(call, KernelCall):
                operator = plan.operators[call.op_index]
                name = operator.name + (f".{operator.overload}" if operator.overload else "")
                kernels[name] += 1
    row: dict[str, object] = {
        "program": str(pte),
        "delegate_calls": delegate_calls,
        "kernel_calls": sum(kernels.values()),
        "kernels": dict(kernels.most_common()),
        "xnnpack_operators": xnnpack_operators(program),
        "layers": layers,
    }
    if layers:
        row["delegate_calls_per_layer"] = round(delegate_calls / layers, 2)
        row["kernel_calls_per_layer"] = round(sum(kernels.values()) / layers, 2)
    return row


def layer_count(pte: Path) -> int | None:
    """From lora-export's manifest beside the program, when there is one."""
    manifest = pte.parent / "manifest.json"
    try:
        return int(json.loads(manifest.read_text())["shape"]["n_layers"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("programs", nargs="+", type=Path)
    parser.add_argument("--layers", type=int, help="the model's layer count (else the manifest's)")
    args = parser.parse_args()
    rows = [report(pte, args.layers or layer_count(pte)) for pte in args.programs]
    for row in rows:
        per_layer = (
            f" ({row['delegate_calls_per_layer']} and {row['kernel_calls_per_layer']} a layer"
            f" over {row['layers']} layers)"
            if row["layers"]
            else ""
        )
        print(
            f"{row['program']}: {row['delegate_calls']} delegate calls, "
            f"{row['kernel_calls']} kernel calls{per_layer}"
        )
        for name, count in row["kernels"].items():  # type: ignore[union-attr]
            print(f"  {count:>5}  {name}")
    write_results("program_report", {"programs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
