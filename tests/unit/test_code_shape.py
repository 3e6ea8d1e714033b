"""Two limits that keep the code walkable: the app composes and routes in under 400 lines,
and no function outside the tests runs over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 60


def test_the_app_stays_thin() -> None:
    lines = (ROOT / "lora_tui/ui/app.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 400


def test_no_function_outside_the_tests_is_over_60_lines() -> None:
    long = []
    for folder in ("lora_tui", "exporter", "benchmarks", "assets"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert long == []
