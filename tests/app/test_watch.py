"""``--watch RUN_DIR`` in the app (issue 44): the run's programs exported already open at
start, and a checkpoint that appears while the app runs is exported (lora-export faked) and
opens as a new pane; a failed export is one notice and the watch goes on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lora_tui.ui.app import LoraTuiApp
from lora_tui.watch.watcher import RunWatcher
from tests.support.fake_engine import FakeEngine, fixed_tool_memory
from tests.support.pilot import SIZE, notifications
from tests.support.watched_run import FakeExport, checkpoint_entry, export_folder, write_checkpoint

POLL_S = 0.02


def watching_app(tmp_path: Path, export: FakeExport) -> LoraTuiApp:
    """An app over an export folder that holds nobel's step 200, watching runs/nobel."""
    run_dir = tmp_path / "runs" / "nobel"
    old = write_checkpoint(run_dir, 200)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "nobel-step200.pte").write_bytes(b"program")
    programs = {"nobel-step200": checkpoint_entry(old, "nobel-step200.pte", 200)}
    weights = export_folder(tmp_path / "out", tmp_path / "base", programs)
    engines: list[FakeEngine] = []

    def factory(on_event):
        engines.append(engine := FakeEngine(on_event))
        return engine

    app = LoraTuiApp(
        [],
        factory,
        transcript_dir=tmp_path,
        cursor_blink=False,
        memory_interval_s=3600,
        tool_memory=fixed_tool_memory,
        watcher=RunWatcher(run_dir, weights.parent, tmp_path / "base", export, POLL_S),
    )
    app.animation_level = "none"
    app.engines = engines  # type: ignore[attr-defined]
    return app


async def until(pilot, condition: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("not in time")


async def test_a_checkpoint_that_appears_opens_as_a_pane(tmp_path: Path) -> None:
    export = FakeExport()
    app = watching_app(tmp_path, export)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "opened nobel step 200" in notifications(app))
        assert list(app.main.panes) == ["nobel step 200"]  # exported already
        write_checkpoint(tmp_path / "runs" / "nobel", 400)  # training saves one
        await until(pilot, lambda: "opened nobel step 400" in notifications(app))
        assert list(app.main.panes) == ["nobel step 200", "nobel step 400"]
        loads = [c[1:] for c in app.engines[0].calls if c[0] == "load"]  # type: ignore[attr-defined]
        assert loads == [
            (str(tmp_path / "out" / "nobel-step200.pte"), "nobel step 200"),
            (str(tmp_path / "out" / "nobel-step400.pte"), "nobel step 400"),
        ]
        assert len(export.jobs) == 1  # step 200 was exported already: only 400 ran one
        assert ["exporting checkpoint-400…", "opened nobel step 400"] == notifications(app)[-2:]
        assert app.main.panes["nobel step 400"].can_answer


async def test_a_failed_export_is_one_notice_and_the_watch_goes_on(tmp_path: Path) -> None:
    export = FakeExport(fail="lora-export: error: runs/nobel/checkpoint-400: no adapter")
    app = watching_app(tmp_path, export)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "opened nobel step 200" in notifications(app))
        write_checkpoint(tmp_path / "runs" / "nobel", 400)
        await until(pilot, lambda: export.fail in notifications(app))
        export.fail = None
        write_checkpoint(tmp_path / "runs" / "nobel", 600)
        await until(pilot, lambda: "opened nobel step 400, 600" in notifications(app))
        assert list(app.main.panes) == ["nobel step 200", "nobel step 400", "nobel step 600"]
