"""One sweep three ways: the plain local ``eval``, ``eval --ray`` on a local cluster of two
single-CPU actors, and ``eval --ray`` on two Ray nodes of one CPU each on this machine.

    .venv/bin/python -m benchmarks.ray_sweep [--prompts 24] [--tokens 64]

The demo's fp32 programs (``lora-tui demo`` builds them) answer the first N questions of
both eval sets, greedy. Each run is a fresh ``lora-tui eval --json`` process, timed from
its start to its report, so Ray's start-up (the cluster, the actors importing the runtime)
is in its figure; the answers of the three runs must be the same. Run it alone; the
figures go to ``benchmarks/results/ray_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import markdown
from benchmarks.record import write_results
from lora_tui.demo.build import DEMO_ADAPTERS, DemoBuild, demo_folder, eval_questions

PORT = "6391"


def timed_eval(args: list[str]) -> tuple[float, dict]:
    started = time.monotonic()
    command = [sys.executable, "-m", "lora_tui.cli", "eval", *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.monotonic() - started, json.loads(done.stdout)


def two_nodes() -> list[str]:
    """Start the two nodes; the command that stops them. ``ray start --head`` turns on
    token authentication, so every process after it presents the token."""
    os.environ["RAY_AUTH_MODE"] = "token"
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    head = [ray, "start", "--head", "--port", PORT, "--num-cpus", "1"]
    subprocess.run([*head, "--include-dashboard", "false"], capture_output=True, check=True)
    node = [ray, "start", "--address", f"127.0.0.1:{PORT}", "--num-cpus", "1"]
    subprocess.run(node, capture_output=True, check=True)
    return [ray, "stop", "--force"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=24, help="per eval set")
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    build = DemoBuild(demo_folder(), None)
    with tempfile.TemporaryDirectory() as scratch:
        prompts = Path(scratch) / "prompts.jsonl"
        rows = [q for name in DEMO_ADAPTERS for q in eval_questions(name)[: args.prompts]]
        prompts.write_text("".join(json.dumps(row) + "\n" for row in rows))
        common = ["--weights", str(build.weights), *map(str, build.programs)]
        common += ["--prompts", str(prompts), "--max-new-tokens", str(args.tokens)]
        runs = {"local eval (one process, 2 threads)": common}
        runs["eval --ray, local cluster (2 actors x 1 CPU)"] = [*common, "--ray"]
        runs["eval --ray, two Ray nodes (1 CPU each)"] = [*common, "--ray", f"127.0.0.1:{PORT}"]
        figures, answers = {}, {}
        for label, run_args in runs.items():
            stop = two_nodes() if "two Ray nodes" in label else None
            try:
                seconds, report = timed_eval(run_args)
            finally:
                if stop:
                    subprocess.run(stop, capture_output=True)
            count = len(report["results"])
            answers[label] = [r["answer"] for r in report["results"]]
            figures[label] = {
                "answers": count,
                "seconds": round(seconds, 1),
                "answers_per_s": round(count / seconds, 3),
            }
            print(f"{label:<48} {count} answers in {seconds:6.1f} s: {count / seconds:.2f}/s")
    same = all(a == answers[next(iter(answers))] for a in answers.values())
    print(f"the same answers in every run: {same}")
    report = {"prompts": len(rows), "programs": len(build.programs), "tokens": args.tokens}
    write_results("ray_sweep", {**report, "same_answers": same, "runs": figures})


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def ray_sweep_table(report: dict) -> list[str]:
    runs = report["runs"]
    local = next(iter(runs.values()))["answers_per_s"]
    lines = markdown.head(["", "answers", "wall time", "answers/s", "against the local eval"])
    for label, run in runs.items():
        ratio = f"{run['answers_per_s'] / local:.2f}×"
        cells = [label, run["answers"], f"{run['seconds']} s", run["answers_per_s"], ratio]
        lines.append(markdown.row(cells))
    return lines


if __name__ == "__main__":
    main()
