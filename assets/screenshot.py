"""Save a screenshot of the demo answering one question in every pane.

    .venv/bin/python assets/screenshot.py [--question TEXT] [--out assets/demo.svg]
                                          [--quantize none,8da4w] [--adapters nobel]
                                          [--departure]

Runs the app headless over the demo's caches (``lora-tui demo --quantize ...`` builds
them) with the real engines, sends the question to every adapter, waits for the replies
and saves an SVG. Several quantizations open each adapter once per quantization.
``--departure`` waits for each adapter's reply to be scored under the base and turns the
departure view (F6) on first.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from textual.widgets import Input

from lora_tui.demo.build import DemoBuild, demo_folder, demo_quantization, suggested_prompts
from lora_tui.engine import GenerationSettings
from lora_tui.engine.foundations import FoundationPrograms, labelled
from lora_tui.engine.worker import foundations_engine_factory
from lora_tui.ui.app import LoraTuiApp

ASSETS = Path(__file__).resolve().parent


async def shoot(
    question: str, out: Path, modes: list[str], adapters: list[str], departure: bool
) -> None:
    quantizations = [demo_quantization(mode) for mode in modes]
    groups = []
    for quantization in quantizations:
        build = DemoBuild(demo_folder(quantization), None)
        chosen = [p for p in build.programs if not adapters or p.stem in adapters]
        groups.append(FoundationPrograms(build.weights, tuple(chosen)))
    groups = labelled(groups, [q.label for q in quantizations])
    app = LoraTuiApp(
        [p for g in groups for p in g.programs],
        foundations_engine_factory(groups, None, True, None),
        {p: g.name_of(p) for g in groups for p in g.programs},
        GenerationSettings(temperature=0.0, max_new_tokens=80),
        cursor_blink=False,
        suggestions=suggested_prompts(),
    )
    async with app.run_test(size=(150, 36)) as pilot:
        while any(p.state == "loading" for p in app.main.panes.values()):
            await asyncio.sleep(0.2)
        app.main.query_one("#prompt", Input).value = question
        await pilot.press("enter")
        await asyncio.sleep(1.0)
        while any(p.state == "generating" for p in app.main.panes.values()):
            await asyncio.sleep(0.2)
        if departure:
            scored = [p for p in app.main.panes.values() if not p.is_base]
            while any(p.departure is None for p in scored):
                await asyncio.sleep(0.2)
            await pilot.press("f6")
        await asyncio.sleep(1.5)  # the memory panel's next sample
        app.save_screenshot(str(out.name), str(out.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default="Who won the 2025 Nobel Prize in Chemistry?")
    parser.add_argument("--out", type=Path, default=ASSETS / "demo.svg")
    parser.add_argument("--quantize", default="none", help="the demo's, comma-separated")
    parser.add_argument("--adapters", default="", help="only these programs, comma-separated")
    parser.add_argument("--departure", action="store_true", help="with the departure view on")
    args = parser.parse_args()
    modes, adapters = args.quantize.split(","), [a for a in args.adapters.split(",") if a]
    asyncio.run(shoot(args.question, args.out, modes, adapters, args.departure))


if __name__ == "__main__":
    main()
