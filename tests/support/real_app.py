"""The app over the real engine process, for pilot tests of what only the engine does."""

from __future__ import annotations

import time
from pathlib import Path

from lora_tui.engine import GenerationSettings
from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.engine.worker import foundations_engine_factory
from lora_tui.ui.app import LoraTuiApp


def real_app(weights: Path, programs: list[Path], tmp_path: Path) -> LoraTuiApp:
    return real_foundations_app([FoundationPrograms(weights, tuple(programs))], tmp_path)


def real_foundations_app(groups: list[FoundationPrograms], tmp_path: Path) -> LoraTuiApp:
    """As ``lora-tui`` opens them: an engine per foundation, a lane per pane, up to one per
    core. ``groups`` are labelled already when there are several."""
    factory = foundations_engine_factory(groups, None, True, tmp_path / "engine.log")
    programs = [p for g in groups for p in g.programs]
    names = {p: g.name_of(p) for g in groups for p in g.programs}
    app = LoraTuiApp(programs, factory, names, transcript_dir=tmp_path, cursor_blink=False)
    app.animation_level = "none"
    app.session.settings = GenerationSettings(temperature=0.0, max_new_tokens=12)
    return app


async def wait_for(pilot, condition, timeout_s: float = 180.0) -> None:
    """Pause until ``condition()`` holds; the engine answers in its own time."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the engine"
        await pilot.pause(0.2)
