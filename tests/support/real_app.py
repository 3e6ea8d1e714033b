"""The app over the real engine process, for pilot tests of what only the engine does."""

from __future__ import annotations

import time
from pathlib import Path

from lora_tui.engine import GenerationSettings
from lora_tui.engine.worker import process_engine_factory
from lora_tui.ui.app import LoraTuiApp


def real_app(weights: Path, programs: list[Path], tmp_path: Path) -> LoraTuiApp:
    # As lora-tui opens them: a lane per pane, up to one per core.
    factory = process_engine_factory(
        weights, None, True, tmp_path / "engine.log", panes=len(programs)
    )
    app = LoraTuiApp(programs, factory, transcript_dir=tmp_path, cursor_blink=False)
    app.animation_level = "none"
    app.settings = GenerationSettings(temperature=0.0, max_new_tokens=12)
    return app


async def wait_for(pilot, condition, timeout_s: float = 180.0) -> None:
    """Pause until ``condition()`` holds; the engine answers in its own time."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the engine"
        await pilot.pause(0.2)
