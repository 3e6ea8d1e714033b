"""Score the demo's programs on each adapter's held-out questions.

    .venv/bin/python assets/evaluate.py [--folder DIR] [--answers]

Runs the exported programs (base.pte, nobel.pte, executorch.pte) through lora-tui's engine,
greedy, one fresh conversation per question. An answer is right when it contains every
keyword of its question (case-insensitive). DIR defaults to the demo's cache, which
``lora-tui demo`` builds. Prints one row per question set and one column per program.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from exporter.native_output import native_output_to, terminal_stream
from lora_tui.demo import DEMO_ADAPTERS, DemoBuild, demo_folder, eval_questions
from lora_tui.engine.host import ModelHost
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import GenerationSettings

SETTINGS = GenerationSettings(temperature=0.0, max_new_tokens=64)


def answer(host: ModelHost, program: str, question: str) -> str:
    host.clear([program])
    done = [e for e in host.generate(program, question, SETTINGS) if isinstance(e, ReplyDone)]
    return done[-1].text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=demo_folder())
    parser.add_argument("--answers", action="store_true", help="print every answer")
    args = parser.parse_args()
    console = Console(file=terminal_stream(1), highlight=False)  # fd 1 goes to the log below
    build = DemoBuild(args.folder, None)
    with native_output_to(Path("/dev/null")):
        host = ModelHost(build.weights)
        programs = [host.load(path).name for path in build.programs]
        host.end_checks()  # the pre-flight child is not needed any more
        question_sets = {name: eval_questions(name) for name in DEMO_ADAPTERS}
        scores: dict[tuple[str, str], int] = {}
        for question_set, rows in question_sets.items():
            for row in rows:
                for program in programs:
                    text = answer(host, program, row["question"])
                    right = all(k.lower() in text.lower() for k in row["keywords"])
                    scores[question_set, program] = scores.get((question_set, program), 0) + right
                    if args.answers:
                        mark = "✓" if right else "✗"
                        console.print(
                            f"{mark} [{program}] {row['question']}\n    {text!r}", markup=False
                        )
    table = Table(title="Held-out questions answered correctly", title_justify="left")
    table.add_column("questions")
    for program in programs:
        table.add_column(program, justify="right")
    for question_set, rows in question_sets.items():
        total = len(rows)
        cells = [f"{scores[question_set, p]}/{total}" for p in programs]
        table.add_row(f"{question_set} ({total})", *cells)
    console.print(table)


if __name__ == "__main__":
    main()
