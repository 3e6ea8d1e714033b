"""The demo's sweep on Ray, killed halfway and resumed: the same scores as the local run.

    .venv/bin/python -m benchmarks.ray_resume

The fp32 demo's three programs (``lora-tui demo`` builds them) answer both eval sets, greedy,
up to 128 new tokens (``benchmarks/demo_eval.py``'s settings), with ``lora-tui eval --ray
--out``. When half the answers are in the results file the driver is killed (SIGKILL);
``--resume`` then runs the rest on a new local cluster. The file must end with exactly one
line per (prompt, program, settings), and the scores must be those of the local run in
``benchmarks/results/demo_eval.json``. Run it alone; the figures go to
``benchmarks/results/ray_resume.json``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import markdown
from benchmarks.demo_eval import MAX_NEW_TOKENS
from benchmarks.record import RESULTS_DIR, write_results
from lora_tui.demo.build import DEMO_ADAPTERS, DemoBuild, demo_folder, eval_questions, eval_set
from lora_tui.judging.results import read_results


def main() -> int:
    build = DemoBuild(demo_folder(), None)
    args = [sys.executable, "-m", "lora_tui.cli", "eval", "--weights", str(build.weights)]
    args += [*map(str, build.programs), *(f"--prompts={eval_set(n)}" for n in DEMO_ADAPTERS)]
    args += ["--max-new-tokens", str(MAX_NEW_TOKENS), "--ray"]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "sweep.jsonl"
        total = sum(len(eval_questions(n)) for n in DEMO_ADAPTERS) * len(build.programs)
        started = time.monotonic()
        driver = subprocess.Popen([*args, "--out", str(out)], stdout=subprocess.DEVNULL)
        while driver.poll() is None and (
            not out.is_file() or len(out.read_bytes().splitlines()) < total // 2
        ):
            time.sleep(0.2)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        first_s = time.monotonic() - started
        kept = len(out.read_bytes().splitlines())
        print(f"killed the driver after {first_s:.0f} s with {kept} of {total} answers saved")
        started = time.monotonic()
        resumed = subprocess.run(
            [*args, "--out", str(out), "--resume", "--json"], stdout=subprocess.PIPE, check=True
        )
        second_s = time.monotonic() - started
        records = read_results(out)
    report = json.loads(resumed.stdout)
    keys = {r.key() for r in records}
    local = json.loads((RESULTS_DIR / "demo_eval.json").read_text(encoding="utf-8"))
    same = report["by_foundation"][""] == local["scores"]["fp32"]
    print(f"resumed: {len(records)} lines, {len(keys)} distinct answers, in {second_s:.0f} s")
    print(f"the same scores as the local run (demo_eval.json, fp32): {same}")
    write_results(
        "ray_resume",
        {
            "answers": total,
            "killed_after_s": round(first_s, 1),
            "saved_before_kill": kept,
            "resume_s": round(second_s, 1),
            "lines": len(records),
            "distinct": len(keys),
            "scores": report["by_foundation"][""],
            "same_scores_as_local": same,
        },
    )
    return 0 if same and len(keys) == len(records) == total else 1


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def ray_resume_table(report: dict) -> list[str]:
    same = "yes" if report["same_scores_as_local"] else "**no**"
    rows = [
        ("answers in the sweep (3 programs × 116 questions)", report["answers"]),
        ("saved when the driver was killed (SIGKILL)", report["saved_before_kill"]),
        ("lines in the file after `--resume`", report["lines"]),
        ("distinct (prompt, program SHA-256, settings)", report["distinct"]),
        ("`--resume` run, cluster start included", f"{report['resume_s']} s"),
        ("scores the same as the local run's (`demo_eval.json`, fp32)", same),
    ]
    return markdown.head(["", ""]) + [markdown.row(list(row)) for row in rows]


if __name__ == "__main__":
    sys.exit(main())
