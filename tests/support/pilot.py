"""Driving the app headless against the fake engine (the app tier's helpers)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from textual.widgets import Input

from lora_tui.demo.build_child import BuildClient
from lora_tui.engine.memory import ToolLayout, ToolMemory
from lora_tui.ui.app import LoraTuiApp
from lora_tui.ui.widgets.adapter_pane import AdapterPane
from tests.support.fake_engine import FakeEngine, fixed_tool_memory

SIZE = (120, 34)


def make_app(
    names: list[str],
    tmp_path: Path,
    suggestions: dict[str, list[str]] | None = None,
    results_path: Path | None = None,
    program_dir: Path = Path("/artifacts"),
    build: BuildClient | None = None,
    base: str | None = None,
    tool_memory: Callable[[ToolLayout], ToolMemory | None] = fixed_tool_memory,
    **engine_options,
) -> LoraTuiApp:
    engines: list[FakeEngine] = []

    def factory(on_event):
        engine = FakeEngine(on_event, **engine_options)
        engines.append(engine)
        return engine

    app = LoraTuiApp(
        [program_dir / f"{n}.pte" for n in names],
        factory,
        transcript_dir=tmp_path,
        cursor_blink=False,
        memory_interval_s=3600,
        suggestions=suggestions,
        results_path=results_path,
        build=build,
        tool_memory=tool_memory,
        base=base,
    )
    app.animation_level = "none"
    app.engines = engines  # type: ignore[attr-defined]
    return app


def engine(app: LoraTuiApp) -> FakeEngine:
    return app.engines[0]  # type: ignore[attr-defined]


async def send(pilot, text: str) -> None:
    pilot.app.query_one("#prompt", Input).value = text
    await pilot.press("enter")
    await pilot.pause()


def pane(app: LoraTuiApp, name: str) -> AdapterPane:
    return app.main.panes[name]


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


def screen_text(app) -> str:
    """What the terminal shows now (the screen and any screen under a modal one), as plain
    text: drawn as a screenshot is, with every character a widget sent, controls too."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True, record=True
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=False)
