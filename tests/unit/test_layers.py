"""Import hygiene: the layers point one way.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and are checked here
with import-linter, which reads every import of both packages without loading them
(function-local and ``TYPE_CHECKING`` imports count: a type is a dependency too):

- lora_tui's layers: ``cli`` over ``ui`` over ``demo`` over ``judging`` over ``engine``
  over ``common`` over ``format``, never an arrow upwards, directly or through others;
- only the demo's builder imports the exporter, and the exporter imports of lora_tui only
  the contract and ``common``;
- Textual only in the UI and the CLI; neither torch nor ExecuTorch in ``common``;
- no circle between the modules of any package.

What import-linter cannot say, the tests below do: the contract imports only the standard
library, and a fresh interpreter that imports it loads no heavy library.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "lora_tui" / "format"


def test_the_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, capsys.readouterr().out


def _imports(path: Path) -> set[str]:
    """The modules a file imports by absolute name (the contract uses no relative ones)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, (path, "a relative import")
            names.add(node.module or "")
    return names


def test_the_contract_imports_only_the_standard_library() -> None:
    for path in sorted(CONTRACT.rglob("*.py")):
        for name in _imports(path):
            ours = name == "lora_tui.format" or name.startswith("lora_tui.format.")
            assert ours or name.split(".")[0] in sys.stdlib_module_names, (path, name)


def test_importing_the_contract_loads_no_heavy_library() -> None:
    """What the contracts say, checked once for real: a fresh interpreter that imports the
    contract, the common helpers and the engine's protocol has no torch or Textual in it."""
    code = (
        "import sys, lora_tui.format, lora_tui.common.files, lora_tui.engine.protocol;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'textual', 'executorch'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
