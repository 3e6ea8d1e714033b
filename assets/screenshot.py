"""Save a screenshot of the demo answering one question in every pane.

    .venv/bin/python assets/screenshot.py [--question TEXT] [--out assets/demo.svg]

Runs the app headless over the demo's cache (``lora-tui demo`` builds it) with the real
engine, sends the question to every adapter, waits for the replies and saves an SVG.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from textual.widgets import Input

from lora_tui.demo import DemoBuild, demo_folder, suggested_prompts
from lora_tui.engine import GenerationSettings
from lora_tui.engine.worker import process_engine_factory
from lora_tui.ui.app import LoraTuiApp

ASSETS = Path(__file__).resolve().parent


async def shoot(question: str, out: Path) -> None:
    build = DemoBuild(demo_folder(), None)
    factory = process_engine_factory(build.weights, None, True, None)
    app = LoraTuiApp(
        build.programs,
        factory,
        GenerationSettings(temperature=0.0, max_new_tokens=80),
        cursor_blink=False,
        suggestions=suggested_prompts(),
    )
    async with app.run_test(size=(150, 36)) as pilot:
        while any(p.state == "loading" for p in app.panes.values()):
            await asyncio.sleep(0.2)
        app.main.query_one("#prompt", Input).value = question
        await pilot.press("enter")
        await asyncio.sleep(1.0)
        while any(p.state == "generating" for p in app.panes.values()):
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)  # the memory panel's next sample
        app.save_screenshot(str(out.name), str(out.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default="Who won the 2025 Nobel Prize in Chemistry?")
    parser.add_argument("--out", type=Path, default=ASSETS / "demo.svg")
    args = parser.parse_args()
    asyncio.run(shoot(args.question, args.out))


if __name__ == "__main__":
    main()
