"""Import hygiene: the layers point one way.

- ``lora_tui.format`` (the artifact contract) imports only the standard library;
- ``lora_tui.common`` adds rich, never torch or Textual;
- the engine never imports Textual or the exporter;
- the exporter imports of lora_tui only the contract and ``common``;
- only the demo's builder imports the exporter;
- no two modules import each other, directly or round a longer circle, inside ``ui/`` or
  anywhere else (imports under ``TYPE_CHECKING`` count: a type is a dependency too).

The graph is read from the source with ``ast``, so this test loads nothing.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lora_tui", "exporter")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imported(path: Path, module: str) -> Iterator[str]:
    """Every module ``module`` imports, at any depth of its code (function-local too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # ``from lora_tui.engine import host`` imports the submodule ``host``.
            yield from (f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)


def _own(name: str) -> str | None:
    """The project module ``name`` is, or is inside; None for third-party modules."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {
    module: {own for name in _imported(path, module) if (own := _own(name)) not in (None, module)}
    for module, path in MODULES.items()
}
THIRD_PARTY = {
    module: {name.split(".")[0] for name in _imported(path, module) if _own(name) is None}
    for module, path in MODULES.items()
}


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_contract_imports_only_the_standard_library() -> None:
    for module in MODULES:
        if _inside(module, "lora_tui.format"):
            assert THIRD_PARTY[module] <= set(sys.stdlib_module_names), module
            assert all(_inside(m, "lora_tui.format") for m in GRAPH[module]), module


def test_common_helpers_use_neither_torch_nor_textual() -> None:
    for module in MODULES:
        if _inside(module, "lora_tui.common"):
            assert not THIRD_PARTY[module] & {"torch", "executorch", "textual"}, module
            allowed = ("lora_tui.common", "lora_tui.format")
            assert all(any(_inside(m, a) for a in allowed) for m in GRAPH[module]), module


def test_the_engine_knows_nothing_of_textual_or_the_exporter() -> None:
    for module in MODULES:
        if _inside(module, "lora_tui.engine"):
            assert "textual" not in THIRD_PARTY[module], module
            assert not any(_inside(m, "exporter") for m in GRAPH[module]), module
            assert not any(_inside(m, "lora_tui.ui") for m in GRAPH[module]), module


def test_the_exporter_imports_only_the_contract_and_common() -> None:
    for module in MODULES:
        if _inside(module, "exporter"):
            assert "textual" not in THIRD_PARTY[module], module
            outside = {m for m in GRAPH[module] if not _inside(m, "exporter")}
            assert all(
                _inside(m, "lora_tui.format") or _inside(m, "lora_tui.common") for m in outside
            ), (module, outside)


def test_only_the_demo_builder_imports_the_exporter() -> None:
    importers = {
        module
        for module in MODULES
        if _inside(module, "lora_tui") and any(_inside(m, "exporter") for m in GRAPH[module])
    }
    assert importers == {"lora_tui.demo"}


def _circle_through(start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, path = stack.pop()
        for nxt in GRAPH[module]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


# A package's __init__ re-exports its submodules, which import siblings through it: that
# is a package's face, not a circle between modules.
@pytest.mark.parametrize("module", [m for m, p in MODULES.items() if p.name != "__init__.py"])
def test_no_circle(module: str) -> None:
    inits = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    saved = {m: GRAPH[m] for m in inits}
    try:
        for m in inits:
            GRAPH[m] = set()
        assert _circle_through(module) is None, " -> ".join(_circle_through(module) or [])
    finally:
        GRAPH.update(saved)


def test_importing_the_contract_loads_no_heavy_library() -> None:
    """What the AST says, checked once for real: a fresh interpreter that imports the
    contract, the common helpers and the engine's protocol has no torch or Textual in it."""
    code = (
        "import sys, lora_tui.format, lora_tui.common.files, lora_tui.engine.protocol;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'textual', 'executorch'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
