"""Several foundations in one app (issue 29): one adapter at fp32 and at 8da4w side by side,
each pane named with its foundation's quantization, each foundation's programs on its own
engine, the memory panel showing each foundation once, and blind votes and the results
file across them."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

from textual.widgets import Input

from lora_tui.demo.build_child import BuildReady
from lora_tui.engine.foundations import FoundationEngines, FoundationPrograms, foundations_factory
from lora_tui.judging.records import AnswerRecord, VoteRecord
from lora_tui.judging.results import read_results
from lora_tui.ui import opening
from lora_tui.ui.app import LoraTuiApp
from lora_tui.ui.opening import open_programs
from lora_tui.ui.screens.ask import AskScreen
from lora_tui.ui.widgets.adapter_pane import PaneState
from lora_tui.ui.widgets.memory_panel import MemoryPanel
from tests.support.fake_build import FakeBuild
from tests.support.fake_engine import FakeEngine, fixed_tool_memory
from tests.support.pilot import SIZE, notifications, send

FP32, Q4 = "fp32", "8da4w g32"


def two_foundation_app(tmp_path: Path, build: FakeBuild | None = None) -> LoraTuiApp:
    """nobel and executorch over an fp32 foundation, nobel over an 8da4w one."""
    groups = []
    for folder, label, names in (("fp32", FP32, ["nobel", "executorch"]), ("q4", Q4, ["nobel"])):
        (tmp_path / folder).mkdir()
        programs = []
        for name in names:
            (program := tmp_path / folder / f"{name}.pte").write_bytes(f"{folder}/{name}".encode())
            programs.append(program)
        weights = tmp_path / folder / "foundation.ptd"
        groups.append(FoundationPrograms(weights, tuple(programs), label))
    sizes = {FP32: 513.4, Q4: 100.6}
    engines: dict[str, FakeEngine] = {}

    def start(group: FoundationPrograms, cores: int, on_event) -> FakeEngine:
        engine = FakeEngine(
            on_event,
            foundation=str(group.weights),
            foundation_mib=sizes[group.label],
            quantization=group.label,
        )
        engines[group.label] = engine
        return engine

    app = LoraTuiApp(
        [p for g in groups for p in g.programs],
        foundations_factory(groups, start, cores=2),
        names={p: g.name_of(p) for g in groups for p in g.programs},
        transcript_dir=tmp_path,
        cursor_blink=False,
        memory_interval_s=3600,
        results_path=tmp_path / "results.jsonl",
        build=build,
        tool_memory=fixed_tool_memory,
    )
    app.animation_level = "none"
    app.fakes = engines  # type: ignore[attr-defined]
    return app


async def test_each_pane_names_its_foundation_and_loads_on_its_engine(tmp_path: Path) -> None:
    app = two_foundation_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert list(app.main.panes) == ["nobel · fp32", "executorch · fp32", "nobel · 8da4w g32"]
        assert isinstance(app.engine, FoundationEngines)
        fakes = app.fakes  # type: ignore[attr-defined]
        loads = {q: [c[2] for c in fake.calls if c[0] == "load"] for q, fake in fakes.items()}
        assert loads == {FP32: ["nobel · fp32", "executorch · fp32"], Q4: ["nobel · 8da4w g32"]}
        assert "8da4w g32" in str(app.main.panes["nobel · 8da4w g32"].border_subtitle)
        shared = str(app.query_one("#memory-sharing").render())
        assert "fp32 513 MiB (fp32)" in shared
        assert "q4 101 MiB (8da4w g32)" in shared
        assert "each packed once for its adapters" in shared
        adapters = str(app.query_one(MemoryPanel).adapters)
        assert "nobel · 8da4w g32" in adapters and "nobel · fp32" in adapters

        await send(pilot, "Who won the 2025 Nobel Prize in Physics?")
        await pilot.pause()
        sent = {q: [n for ns, _ in fake.sent_settings for n in ns] for q, fake in fakes.items()}
        assert sent == {FP32: ["nobel · fp32", "executorch · fp32"], Q4: ["nobel · 8da4w g32"]}
    answers = [r for r in read_results(tmp_path / "results.jsonl") if isinstance(r, AnswerRecord)]
    origins = {(r.adapter, r.quantization, Path(r.foundation).parent.name) for r in answers}
    assert origins == {
        ("nobel · fp32", FP32, "fp32"),
        ("executorch · fp32", FP32, "fp32"),
        ("nobel · 8da4w g32", Q4, "q4"),
    }


async def test_a_blind_vote_across_foundations_is_recorded_by_full_name(tmp_path: Path) -> None:
    app = two_foundation_app(tmp_path)
    app.main.blind.rng = random.Random(4)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        await pilot.pause()
        await send(pilot, "Who won the 2025 Nobel Prize in Physics?")
        await pilot.pause()
        order = list(app.main.panes)
        await pilot.press("a")
        await pilot.pause()
        assert app.main.blind.tally.standings[order[0]].wins == 1
    votes = [r for r in read_results(tmp_path / "results.jsonl") if isinstance(r, VoteRecord)]
    assert len(votes) == 1 and votes[0].verdict == order[0]
    assert sorted(votes[0].adapters) == sorted(
        ["nobel · fp32", "executorch · fp32", "nobel · 8da4w g32"]
    )


async def test_stopping_and_clearing_reach_every_foundations_engine(tmp_path: Path) -> None:
    app = two_foundation_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.main.action_clear()
        await app.main.unload("nobel · 8da4w g32")
        await pilot.pause()
        fakes = app.fakes  # type: ignore[attr-defined]
        assert ("unload", "nobel · 8da4w g32") in fakes[Q4].calls
        assert not any(c[0] == "unload" for c in fakes[FP32].calls)
        assert all(("clear", None) in fake.calls for fake in fakes.values()), fakes


def test_two_foundations_side_by_side(tmp_path: Path, snap_compare) -> None:
    app = two_foundation_app(tmp_path)
    assert snap_compare(app, terminal_size=SIZE)


async def test_a_demo_of_two_quantizations_loads_each_built_program_on_its_engine(
    tmp_path: Path,
) -> None:
    """``lora-tui demo --quantize none,8da4w``: one build hands over both folders' programs,
    two of them named nobel.pte; each pane gets its own folder's."""
    build = FakeBuild()
    app = two_foundation_app(tmp_path, build)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        programs = (tmp_path / "fp32" / "nobel.pte", tmp_path / "fp32" / "executorch.pte")
        programs += (tmp_path / "q4" / "nobel.pte",)
        build.report(BuildReady(tmp_path / "fp32" / "foundation.ptd", programs, 9.0, True))
        await pilot.pause()
        fakes = app.fakes  # type: ignore[attr-defined]
        assert [c[1:] for c in fakes[Q4].calls if c[0] == "load"] == [
            (str(tmp_path / "q4" / "nobel.pte"), "nobel · 8da4w g32")
        ]
        assert len([c for c in fakes[FP32].calls if c[0] == "load"]) == 2


def one_foundation_app(tmp_path: Path) -> LoraTuiApp:
    """nobel over an fp32 foundation, each foundation on a fake engine of its own."""
    (tmp_path / "fp32").mkdir()
    group = FoundationPrograms(
        tmp_path / "fp32" / "foundation.ptd", (tmp_path / "fp32" / "nobel.pte",)
    )
    engines: dict[Path, FakeEngine] = {}

    def start(group: FoundationPrograms, cores: int, on_event) -> FakeEngine:
        engine = FakeEngine(
            on_event, foundation=str(group.weights), quantization=group.label or FP32
        )
        engines[group.weights] = engine
        return engine

    app = LoraTuiApp(
        list(group.programs),
        foundations_factory([group], start, cores=2),
        transcript_dir=tmp_path,
        cursor_blink=False,
        memory_interval_s=3600,
        tool_memory=fixed_tool_memory,
    )
    app.animation_level = "none"
    app.fakes = engines  # type: ignore[attr-defined]
    return app


async def test_the_palette_opens_another_foundation_beside_the_first(
    tmp_path: Path, monkeypatch
) -> None:
    # The foundation file is a stand-in: what opening it reads is its manifest's quantization.
    monkeypatch.setattr(
        opening, "open_foundation", lambda weights: SimpleNamespace(quantization=Q4)
    )
    app = one_foundation_app(tmp_path)
    q4 = tmp_path / "q4"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.main.load_programs(foundation=True)
        await pilot.pause()
        assert isinstance(app.screen, AskScreen)
        app.screen.query_one(Input).value = f"{q4}/foundation.ptd {q4}/nobel.pte"
        await pilot.press("enter")
        await pilot.pause()
        assert list(app.main.panes) == ["nobel", "nobel · 8da4w g32"]
        fakes = app.fakes  # type: ignore[attr-defined]
        assert [c for c in fakes[q4 / "foundation.ptd"].calls if c[0] == "load"] == [
            ("load", str(q4 / "nobel.pte"), "nobel · 8da4w g32")
        ]
        assert app.main.panes["nobel · 8da4w g32"].state is PaneState.READY
        assert len(app.query_one(MemoryPanel).foundations) == 2


async def test_a_foundation_that_cannot_open_is_one_notice(tmp_path: Path, monkeypatch) -> None:
    app = one_foundation_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await open_programs(
            [tmp_path / "gone.ptd", tmp_path / "gone.pte"],
            app.engine,
            app.main.add_program,
            app.notify,
        )
        await pilot.pause()
        assert list(app.main.panes) == ["nobel"]
        said = notifications(app)
        assert any("gone.ptd" in m and "\n" not in m for m in said), said
        opened = SimpleNamespace(quantization=FP32)  # a readable stand-in for the open one
        monkeypatch.setattr(opening, "open_foundation", lambda weights: opened)
        await open_programs(
            [tmp_path / "fp32" / "foundation.ptd"], app.engine, app.main.add_program, app.notify
        )
        await pilot.pause()
        assert any("is open already" in m for m in notifications(app))
