"""Prompt-set files for the tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_prompts(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
