"""An adapter at another LoRA strength as a pane of its own (issue 44): ``nobel.pte@0.5`` on
the command line and the palette's "Open at scale…" open "nobel ×0.5" over the adapter's
foundation, its program a scaled copy in the tool's cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from lora_tui.cli.options import foundation_groups
from lora_tui.engine.foundations import FoundationPrograms, foundations_factory
from lora_tui.ui.app import LoraTuiApp
from lora_tui.ui.palette import main_screen_commands
from lora_tui.ui.screens.ask import AskScreen
from lora_tui.ui.widgets.adapter_pane import PaneState
from tests.support.fake_engine import FakeEngine, fixed_tool_memory
from tests.support.pilot import SIZE, notifications
from tests.unit.test_scaling import export_folder  # noqa: F401 (a fixture)

Q4 = "8da4w g32"


def app_over(groups: list[FoundationPrograms], tmp_path: Path) -> LoraTuiApp:
    engines: dict[Path, FakeEngine] = {}

    def start(group: FoundationPrograms, cores: int, on_event) -> FakeEngine:
        engines[group.weights] = FakeEngine(on_event, foundation=str(group.weights))
        return engines[group.weights]

    app = LoraTuiApp(
        [p for g in groups for p in g.programs],
        foundations_factory(groups, start, cores=2),
        names={p: g.name_of(p) for g in groups for p in g.programs},
        transcript_dir=tmp_path,
        cursor_blink=False,
        memory_interval_s=3600,
        results_path=tmp_path / "results.jsonl",
        tool_memory=fixed_tool_memory,
    )
    app.animation_level = "none"
    app.fakes = engines  # type: ignore[attr-defined]
    return app


def loads(app: LoraTuiApp, weights: Path) -> list[tuple[str, str]]:
    fake = app.fakes[weights]  # type: ignore[attr-defined]
    return [(Path(c[1]).name, c[2]) for c in fake.calls if c[0] == "load"]


async def test_a_program_at_a_scale_opens_as_its_own_pane(
    export_folder: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    weights, nobel = export_folder / "foundation.ptd", export_folder / "nobel.pte"
    groups = foundation_groups([[weights, nobel, Path(f"{nobel}@0.5")]], [])
    app = app_over(groups, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert list(app.main.panes) == ["nobel", "nobel ×0.5"]
        assert loads(app, weights) == [("nobel.pte", "nobel"), ("nobel ×0.5.pte", "nobel ×0.5")]
        scaled = app.main.panes["nobel ×0.5"]
        assert scaled.state is PaneState.READY
        assert scaled.path is not None and scaled.path.is_relative_to(tmp_path / "cache")
        assert "nobel ×0.5" in str(scaled.border_title)
        assert "LoRA ×0.5" in str(scaled.border_subtitle)
        assert "LoRA" not in str(app.main.panes["nobel"].border_subtitle)


async def test_open_at_scale_in_the_palette(
    export_folder: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Over the foundation of the adapter asked for: with two open, the second's."""
    q4 = tmp_path / "q4"
    q4.mkdir()
    for file in export_folder.iterdir():
        (q4 / file.name).write_bytes(file.read_bytes())
    groups = [
        FoundationPrograms(
            export_folder / "foundation.ptd", (export_folder / "nobel.pte",), "fp32"
        ),
        FoundationPrograms(q4 / "foundation.ptd", (q4 / "nobel.pte",), Q4),
    ]
    app = app_over(groups, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert list(app.main.panes) == ["nobel · fp32", f"nobel · {Q4}"]
        command = next(c for c in main_screen_commands(app.main) if c.title == "Open at scale…")
        command.run()
        await pilot.pause()
        assert isinstance(app.screen, AskScreen)
        field = app.screen.query_one(Input)
        assert field.value == "nobel · fp32 0.5"  # the selected pane's, at half
        field.value = f"nobel · {Q4} 2"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert list(app.main.panes) == ["nobel · fp32", f"nobel · {Q4}", f"nobel ×2 · {Q4}"]
        assert loads(app, q4 / "foundation.ptd")[-1] == ("nobel ×2.pte", f"nobel ×2 · {Q4}")
        assert app.main.panes[f"nobel ×2 · {Q4}"].state is PaneState.READY
        assert sorted(p.name for p in q4.iterdir()) == sorted(
            p.name for p in export_folder.iterdir()
        )  # nothing written beside the program


@pytest.mark.parametrize("blind", [False, True])
async def test_a_program_that_cannot_be_scaled_is_one_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blind: bool
) -> None:
    """export_llm's program has no manifest: one line says what scaling needs. In blind mode
    the command (it names adapters) is not offered."""
    monkeypatch.setenv("LORA_TUI_CACHE", str(tmp_path / "cache"))
    programs = (tmp_path / "llm.pte", tmp_path / "other.pte")  # blind mode needs two
    for program in programs:
        program.write_bytes(b"program")
    app = app_over([FoundationPrograms(tmp_path / "w.ptd", programs)], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if blind:
            await app.main.action_toggle_blind()
            titles = [c.title for c in main_screen_commands(app.main)]
            assert "Open at scale…" not in titles
            return
        app.main.open_at_scale()
        await pilot.pause()
        app.screen.query_one(Input).value = "llm 0.5"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert list(app.main.panes) == ["llm", "other"]
        said = [m for m in notifications(app) if "scale needs" in m]
        assert said and "\n" not in said[0], notifications(app)
