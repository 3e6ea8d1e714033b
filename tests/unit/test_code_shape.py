"""Limits that keep the code walkable: no function outside the tests runs over 60 lines, and
the app stays one that composes and routes (no action of the UI only forwards to another
object, and the app's own actions are its app-wide keys')."""

from __future__ import annotations

import ast
from pathlib import Path

from lora_tui.ui.app import LoraTuiApp
from lora_tui.ui.keys import APP_BINDINGS

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 60


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


def forwards(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Its body (past a docstring) is one call of a method of one of ``self``'s parts:
    ``self.dialogs.temperature()``, ``await self.blind.toggle()``."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Expr | ast.Return):
        return False
    call = body[0].value
    call = call.value if isinstance(call, ast.Await) else call
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        return False
    owner = call.func.value
    return isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name)


def test_no_action_only_forwards_to_another_object() -> None:
    # An action is what a key runs. One that only hands over to a part of its object
    # (the app's 19 ``action_set_temperature`` -> ``self.dialogs.temperature()``) made the
    # app a switchboard: the palette calls such a method directly, and a key's action lives
    # on the screen that owns what it changes.
    forwarders = []
    for path in sorted((ROOT / "lora_tui" / "ui").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("action_") and forwards(node):
                    forwarders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert forwarders == []


def test_the_forwarder_check_finds_one() -> None:
    source = "class A:\n    def action_x(self):\n        '''Doc.'''\n        self.part.x()\n"
    (method,) = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)]
    assert forwards(method)


def test_the_apps_own_actions_are_its_app_wide_keys() -> None:
    """Help, cancel, save: what works over any screen. Everything else is a screen's."""
    own = {name.removeprefix("action_") for name in vars(LoraTuiApp) if name.startswith("action_")}
    bound = {binding.action.removeprefix("app.").split("(")[0] for binding in APP_BINDINGS}
    assert own <= bound, own - bound


def test_no_part_of_the_ui_but_the_app_is_handed_the_app() -> None:
    # Features that took the app wrote into it (``app.broadcast = True``, ``app.sub_title``):
    # a part is handed what it uses (the panes, a notify, a way to show a dialog) instead,
    # so no module of the UI but app.py names the app's class or Textual's.
    knows = []
    for path in sorted((ROOT / "lora_tui" / "ui").rglob("*.py")):
        if path.name == "app.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in (
                "textual.app",
                "lora_tui.ui.app",
            ):
                if any(alias.name in ("App", "LoraTuiApp") for alias in node.names):
                    knows.append(str(path.relative_to(ROOT)))
    assert knows == []
