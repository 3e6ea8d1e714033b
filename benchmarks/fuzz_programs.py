"""Load damaged copies of a program beside two healthy ones in the app's engine, and count.

    .venv/bin/python -m benchmarks.fuzz_programs --weights out/foundation.ptd \\
        --program out/a.pte --healthy out/a.pte out/b.pte [-n 200] [--seed 0] [--tokenizer T]

Each damaged copy (bytes flipped in the flatbuffer, in a delegate blob or in the LoRA
weights, or the file cut inside a segment; see ``tests/support/damage.py``) is loaded into the
same engine process as the two healthy programs, then all of them are asked a question.
Prints how many copies were rejected cleanly, how many crashed a pre-flight child (and were
rejected), how many loaded (flips in weight values that no check can see without a
manifest hash), how many took down the healthy adapters (must be 0) and how many hung
(must be 0). The counts go to ``benchmarks/results/fuzz_programs.json``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks import markdown
from benchmarks.record import write_results
from tests.support.damage import KINDS, FuzzEngine, damage

VERDICTS = ("rejected", "crashed a child", "loaded", "took down healthy", "hung")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--program", type=Path, required=True, help="the program to damage")
    parser.add_argument("--healthy", type=Path, nargs=2, required=True)
    parser.add_argument("--tokenizer", type=Path)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    original = args.program.read_bytes()
    counts: Counter[str] = Counter()
    by_kind: Counter[tuple[str, str]] = Counter()
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as scratch,
        FuzzEngine(
            args.weights, args.healthy, args.tokenizer, Path(scratch) / "engine.log"
        ) as engine,
    ):
        for index in range(args.n):
            kind = KINDS[index % len(KINDS)]
            copy = Path(scratch) / f"damaged-{index}.pte"
            copy.write_bytes(damage(original, kind, rng))
            outcome = engine.try_program(copy)
            counts[outcome.verdict] += 1
            by_kind[(kind, outcome.verdict)] += 1
            copy.unlink()
            print(f"{index + 1:4d} {kind:<11} {outcome.verdict:<22} {outcome.detail}", flush=True)
    seconds = time.perf_counter() - started
    print(f"\n{args.n} damaged copies of {args.program.name} in {seconds:.0f} s")
    report: dict = {"copies": args.n, "seconds": round(seconds), "verdicts": {}}
    for verdict in VERDICTS:
        kinds = {k: by_kind[(k, verdict)] for k in KINDS if by_kind[(k, verdict)]}
        report["verdicts"][verdict] = {"copies": counts[verdict], "by_kind": kinds}
        listed = ", ".join(f"{k} {n}" for k, n in kinds.items())
        print(f"  {verdict:<18} {counts[verdict]:4d}  {listed}")
    write_results("fuzz_programs", report)


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


FUZZ_VERDICTS = {
    "rejected": "rejected in one line",
    "crashed a child": "crashed a pre-flight child, rejected in one line",
    "loaded": "loaded and ran (bits flipped in weight values)",
    "took down healthy": "**took down the healthy adapters**",
    "hung": "**hung**",
}


DAMAGE_KINDS = {"delegate": "delegate blob", "named-data": "LoRA weights", "cut": "cut short"}


def fuzz_programs_table(report: dict) -> list[str]:
    lines = markdown.head(["outcome", "copies", "by kind of damage"])
    for verdict, label in FUZZ_VERDICTS.items():
        row = report["verdicts"][verdict]
        kinds = ", ".join(f"{DAMAGE_KINDS.get(k, k)} {n}" for k, n in row["by_kind"].items())
        copies = f"**{row['copies']}**" if label.startswith("**") else row["copies"]
        lines.append(markdown.row([label, copies, kinds]))
    return lines


if __name__ == "__main__":
    main()
