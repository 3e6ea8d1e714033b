"""Score the demo's programs on each adapter's held-out questions: ``lora-tui eval`` on the
demo's cache with the eval sets in ``lora_tui/demo_assets/eval/``, then check the targets.

    .venv/bin/python assets/evaluate.py [--quantize none|8da4w | --folder DIR]
                                        [lora-tui eval options: --out, --json]

Runs base.pte, nobel.pte and executorch.pte greedy, one fresh conversation per question;
an answer is right when it contains every keyword of its question (and matches its regex,
if it has one). DIR defaults to the demo's cache, which ``lora-tui demo`` builds (the cache
of ``lora-tui demo --quantize MODE`` with ``--quantize``). Prints
``lora-tui eval``'s report, then the score of each program on each question set against
its target: an adapter at least 95% on its own questions and at most 10% on the other's,
the base at most 5% on both. Exits 1 when a target is missed. ``--out results.jsonl``
keeps every answer (appended, as ``lora-tui eval`` does).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from lora_tui.cli import main as lora_tui
from lora_tui.demo import (
    DEMO_ADAPTERS,
    DEMO_QUANTIZE,
    DemoBuild,
    demo_folder,
    demo_quantization,
    eval_set,
)
from lora_tui.format import QUANTIZE_MODES

# The app's default reply length (GenerationSettings): the three-step answer needs ~80 tokens.
MAX_NEW_TOKENS = 128
OWN_MIN, OTHER_MAX, BASE_MAX = 95.0, 10.0, 5.0


def target(adapter: str, group: str) -> tuple[str, float]:
    """(">=" or "<=", percent) that ``adapter`` must reach on the questions of ``group``."""
    if adapter == group:
        return ">=", OWN_MIN
    return "<=", BASE_MAX if adapter == "base" else OTHER_MAX


def check_targets(records: list[dict], stream=sys.stdout) -> bool:
    """Print a line per program and question set with its target; True when all are met."""
    scores: dict[tuple[str, str], list[bool]] = {}
    for record in records:
        if record.get("right") is not None:
            scores.setdefault((record["adapter"], record["group"]), []).append(record["right"])
    print("\ntargets:", file=stream)
    met = True
    for (adapter, group), marks in scores.items():
        percent = 100 * sum(marks) / len(marks)
        sign, limit = target(adapter, group)
        ok = percent >= limit if sign == ">=" else percent <= limit
        met &= ok
        print(
            f"  {adapter:<11} on {group:<11} {sum(marks):>3}/{len(marks):<3} {percent:5.1f}%"
            f"  target {sign} {limit:.0f}%  {'PASS' if ok else 'FAIL'}",
            file=stream,
        )
    if not scores:
        print("  no scored answers", file=stream)
    return met and bool(scores)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--quantize", choices=QUANTIZE_MODES, default=DEMO_QUANTIZE)
    where.add_argument("--folder", type=Path)
    parser.add_argument("--out", type=Path, help="append every answer here (JSON Lines)")
    args, passed_on = parser.parse_known_args()
    build = DemoBuild(args.folder or demo_folder(demo_quantization(args.quantize)), None)
    prompt_sets = [f"--prompts={eval_set(name)}" for name in DEMO_ADAPTERS]
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "results.jsonl"
        # --out appends: read back only this run's lines.
        before = len(out.read_text(encoding="utf-8").splitlines()) if out.exists() else 0
        code = lora_tui(
            ["eval", "--weights", str(build.weights), *map(str, build.programs), *prompt_sets]
            + ["--max-new-tokens", str(MAX_NEW_TOKENS), "--out", str(out), *passed_on]
        )
        if code:
            return code
        lines = out.read_text(encoding="utf-8").splitlines()[before:]
    records = [json.loads(line) for line in lines if line.strip()]
    # After --json the report stays one JSON object on stdout.
    stream = sys.stderr if "--json" in passed_on else sys.stdout
    return 0 if check_targets(records, stream) else 1


if __name__ == "__main__":
    sys.exit(main())
