"""Every results file a benchmark writes says which run made it."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pytest

from benchmarks import record
from benchmarks.record import provenance, write_results


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "old.json").write_text("{}\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_it_names_the_commit_versions_and_machine(repo: Path) -> None:
    made = provenance(repo)
    assert made["commit"] == _git(repo, "rev-parse", "HEAD").strip()
    assert re.fullmatch(r"[0-9a-f]{40}", made["commit"])
    assert made["dirty"] is False
    when = datetime.fromisoformat(made["date_utc"])
    assert when.utcoffset() is not None and when.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - when).total_seconds()) < 60
    assert made["python"] == platform.python_version()
    assert made["torch"] == version("torch")
    assert made["executorch"] == version("executorch")
    assert made["lora-tui"] == version("lora-tui")
    assert made["cpu_count"] == os.cpu_count()
    assert made["cores_usable"] == len(os.sched_getaffinity(0)) >= 1
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    assert made["cpu"] == (names[0] if names else None)


def test_a_changed_or_new_file_makes_the_tree_dirty_but_a_results_file_does_not(
    repo: Path,
) -> None:
    (repo / "benchmarks" / "results" / "old.json").write_text('{"new": 1}\n')
    (repo / "benchmarks" / "results" / "new.json").write_text("{}\n")
    assert provenance(repo)["dirty"] is False
    (repo / "code.py").write_text("x = 2\n")
    assert provenance(repo)["dirty"] is True
    _git(repo, "checkout", "-q", "code.py")
    (repo / "new_benchmark.py").write_text("")
    assert provenance(repo)["dirty"] is True


def test_outside_a_checkout_the_commit_is_unknown(tmp_path: Path) -> None:
    made = provenance(tmp_path)
    assert made["commit"] is None and made["dirty"] is None
    assert made["python"] == platform.python_version()


def test_write_results_adds_the_provenance_of_the_run_as_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(record, "RESULTS_DIR", tmp_path / "results")
    path = write_results("example", {"tok_s": 12.5})
    written = json.loads(path.read_text(encoding="utf-8"))
    assert path == tmp_path / "results" / "example.json"
    assert written["tok_s"] == 12.5
    assert written["provenance"] == record.AT_START
    assert set(written["provenance"]) == set(provenance())
    assert written["provenance"]["commit"] == provenance()["commit"]
