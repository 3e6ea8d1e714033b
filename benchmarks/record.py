"""Where a benchmark's figures go: ``benchmarks/results/<name>.json``, written whole, so the
docs quote a file a run wrote rather than prose typed by hand. Each file carries the run
that made it (``provenance``): the commit, the versions, the machine, as they were when the
benchmark started (imported this module), since a run may outlast edits to the checkout."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from lora_tui.common.files import write_text_atomic

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = RESULTS_DIR.parents[1]
PACKAGES = ("torch", "executorch", "lora-tui")


def write_results(name: str, report: dict[str, Any]) -> Path:
    """Write ``report`` as JSON to the results folder, with the run's provenance; returns
    the file."""
    text = json.dumps({**report, "provenance": AT_START}, indent=2) + "\n"
    path = RESULTS_DIR / f"{name}.json"
    RESULTS_DIR.mkdir(exist_ok=True)
    write_text_atomic(path, text)
    print(f"written to {path}")
    return path


def provenance(repo: Path = REPO) -> dict[str, Any]:
    """The run that made a results file: which code (the commit, and whether files differed
    from it), when (UTC), with which versions, on which CPU and how many cores."""
    commit, dirty = _git_state(repo)
    return {
        "commit": commit,
        "dirty": dirty,
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        **{package: _version(package) for package in PACKAGES},
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
    }


def _git_state(repo: Path) -> tuple[str | None, bool | None]:
    """(HEAD's commit, whether any file differs from it or is new); (None, None) outside a
    checkout. The results folder is left out: a run writes there."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise OSError(done.stderr.strip())
        return done.stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        changed = git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(changed.strip())


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


AT_START = provenance()  # this run's, taken as the benchmark imports this module
