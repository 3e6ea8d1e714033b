"""Score the demo's programs on each adapter's held-out questions: ``lora-tui eval`` on the
demo's cache with the eval sets in ``assets/data/*/eval.jsonl``.

    .venv/bin/python assets/evaluate.py [--folder DIR] [lora-tui eval options: --out, --json]

Runs base.pte, nobel.pte and executorch.pte greedy, one fresh conversation per question;
an answer is right when it contains every keyword of its question. DIR defaults to the
demo's cache, which ``lora-tui demo`` builds. Prints a row per question and the totals per
question set; ``--out results.jsonl`` keeps every answer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lora_tui.cli import main as lora_tui
from lora_tui.demo import ASSETS, DEMO_ADAPTERS, DemoBuild, demo_folder

MAX_NEW_TOKENS = 64


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=demo_folder())
    args, passed_on = parser.parse_known_args()
    build = DemoBuild(args.folder, None)
    prompt_sets = [f"--prompts={ASSETS / 'data' / name / 'eval.jsonl'}" for name in DEMO_ADAPTERS]
    return lora_tui(
        ["eval", "--weights", str(build.weights), *map(str, build.programs), *prompt_sets]
        + ["--max-new-tokens", str(MAX_NEW_TOKENS), *passed_on]
    )


if __name__ == "__main__":
    sys.exit(main())
