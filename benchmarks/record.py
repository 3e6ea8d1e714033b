"""Where a benchmark's figures go: ``benchmarks/results/<name>.json``, written whole, so the
docs quote a file a run wrote rather than prose typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

from lora_tui.common.files import write_text_atomic

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(name: str, report: object) -> Path:
    """Write ``report`` as JSON to the results folder; returns the file."""
    text = json.dumps(report, indent=2) + "\n"
    path = RESULTS_DIR / f"{name}.json"
    RESULTS_DIR.mkdir(exist_ok=True)
    write_text_atomic(path, text)
    print(f"written to {path}")
    return path
