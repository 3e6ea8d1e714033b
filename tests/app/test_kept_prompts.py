"""A prompt sent while some panes still load: each of them keeps it, shows it waiting, and
answers it once loaded, as part of the same round; a pane whose load fails says it missed
it; Esc drops what was kept and not sent yet. Blind mode still waits for every adapter."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static

from lora_tui.engine import EngineFailed
from lora_tui.judging.results import read_results
from lora_tui.ui.widgets.adapter_pane import PaneState
from tests.support.fake_engine import DEFAULT_REPLY, REPLIES
from tests.support.pilot import SIZE, engine, make_app, notifications, pane, send


def shown(app, name: str) -> str:
    """The plain lines a pane's conversation shows (prompts, notes, errors)."""
    return "\n".join(str(w.render()) for w in pane(app, name).scroll_view.query(Static))


def sends(app) -> list[tuple]:
    return [c for c in engine(app).calls if c[0] == "send"]


async def test_a_pane_that_loads_late_answers_the_prompts_sent_before(tmp_path: Path) -> None:
    names = ["nobel", "executorch", "base"]
    for name in names:  # stand-in program files, for the results file to hash
        (tmp_path / f"{name}.pte").write_bytes(name.encode())
    results = tmp_path / "results.jsonl"
    app = make_app(names, tmp_path, late={"base"}, results_path=results, program_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert pane(app, "base").state is PaneState.LOADING
        await send(pilot, "Who won?")
        first = app.main.replies.rounds.last
        await send(pilot, "And in 2023?")  # a second one before it has loaded: kept in order
        second = app.main.replies.rounds.last
        assert sends(app) == [
            ("send", ("nobel", "executorch"), "Who won?"),
            ("send", ("nobel", "executorch"), "And in 2023?"),
        ]
        base = shown(app, "base")
        assert "Who won?" in base and "And in 2023?" in base
        assert "waiting for this adapter to load" in base
        assert first is not None and second is not None
        assert not first.finished.is_set() and not second.finished.is_set()  # they wait for it

        engine(app).finish_loads()
        for _ in range(4):
            await pilot.pause()
        assert sends(app)[2:] == [
            ("send", ("base",), "Who won?"),
            ("send", ("base",), "And in 2023?"),
        ]
        # It answers from its conversation: the first exchange, then the second prompt.
        assert [m.content for m in engine(app).conversations["base"]] == [
            "Who won?",
            DEFAULT_REPLY,
            "And in 2023?",
        ]
        assert "waiting" not in shown(app, "base")
        assert pane(app, "base").state is PaneState.READY
        for round in (first, second):
            assert round.finished.is_set()
            assert set(round.replies) == {"nobel", "executorch", "base"}
        # The two that answered at once show their speed together; the late one its own.
        assert "52.8 together" in str(pane(app, "nobel").query_one(".status").render())
        assert "together" not in str(pane(app, "base").query_one(".status").render())
    rounds = {(r.adapter, r.prompt): r.round for r in read_results(results)}
    assert rounds[("base", "Who won?")] == rounds[("nobel", "Who won?")] == first.id
    assert rounds[("base", "And in 2023?")] == rounds[("executorch", "And in 2023?")] == second.id


async def test_prompts_wait_their_turn_behind_a_kept_one_and_escape_drops_them(
    tmp_path: Path,
) -> None:
    app = make_app(["nobel", "base"], tmp_path, late={"base"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await send(pilot, "And in 2023?")
        engine(app).hold = True  # base answers its first kept prompt, and holds
        engine(app).finish_loads()
        await pilot.pause()
        base = pane(app, "base")
        assert base.state is PaneState.GENERATING
        assert "waiting for the answer above" in shown(app, "base")
        await send(pilot, "Thanks")  # nobel takes it now; base keeps it behind the others
        assert ("send", ("nobel",), "Thanks") in sends(app)
        assert shown(app, "base").count("waiting for the answer above") == 2
        await pilot.press("escape")
        await pilot.pause()
        assert base.state is PaneState.CANCELLED
        assert shown(app, "base").count("not sent: cancelled (Esc)") == 2
        assert [c[2] for c in sends(app) if c[1] == ("base",)] == ["Who won?"]


async def test_a_pane_whose_load_fails_says_it_missed_the_prompt(tmp_path: Path) -> None:
    app = make_app(
        ["nobel", "executorch"],
        tmp_path,
        late={"executorch"},
        fail={"executorch": "executorch.pte: not an LLM program"},
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        round = app.main.replies.rounds.last
        assert round is not None and not round.finished.is_set()
        assert "waiting for this adapter to load" in shown(app, "executorch")

        engine(app).finish_loads()
        await pilot.pause()
        executorch = pane(app, "executorch")
        assert executorch.state is PaneState.ERROR
        assert "not sent: this adapter failed to load" in shown(app, "executorch")
        assert any(
            t.role == "notice" and "Who won?" in t.text for t in executorch.conversation.turns
        )
        assert round.finished.is_set() and round.adapters == ["nobel"]  # it dropped out
        assert sends(app) == [("send", ("nobel",), "Who won?")]


async def test_escape_drops_the_prompts_a_loading_pane_kept(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path, late={"executorch"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        round = app.main.replies.rounds.last
        assert round is not None
        assert "waiting for this adapter to load" in shown(app, "executorch")
        await pilot.press("escape")
        await pilot.pause()
        assert "not sent: cancelled (Esc)" in shown(app, "executorch")
        assert round.finished.is_set() and round.adapters == ["nobel"]

        engine(app).finish_loads()
        await pilot.pause()
        assert pane(app, "executorch").state is PaneState.READY
        assert sends(app) == [("send", ("nobel",), "Who won?")]  # never sent to it
        await send(pilot, "What is a .pte?")  # the dropped prompt is not in its conversation
        assert [m.content for m in engine(app).conversations["executorch"]] == ["What is a .pte?"]


async def test_an_engine_that_dies_during_the_load_drops_what_the_pane_kept(
    tmp_path: Path,
) -> None:
    app = make_app(["nobel", "executorch"], tmp_path, late={"executorch"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        round = app.main.replies.rounds.last
        engine(app).on_event(EngineFailed("engine process exited (-9)"))
        for _ in range(2):
            await pilot.pause()
        assert pane(app, "executorch").state is PaneState.ERROR
        assert "not sent: this adapter failed to load" in shown(app, "executorch")
        assert round is not None and round.finished.is_set() and round.adapters == ["nobel"]


async def test_clearing_drops_what_a_loading_pane_kept(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path, late={"executorch"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert shown(app, "executorch") == ""
        engine(app).finish_loads()
        await pilot.pause()
        assert sends(app) == [("send", ("nobel",), "Who won?")]
        assert pane(app, "executorch").conversation.turns == []


async def test_the_selected_pane_keeps_a_prompt_while_it_loads(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path, late={"executorch"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("tab", "ctrl+b")
        assert app.main.broadcast is False
        await send(pilot, "What is a .pte?")
        assert app.query_one("#prompt", Input).value == ""
        assert "waiting for this adapter to load" in shown(app, "executorch")
        engine(app).finish_loads()
        for _ in range(2):
            await pilot.pause()
        assert sends(app) == [("send", ("executorch",), "What is a .pte?")]
        assert pane(app, "executorch").conversation.last_reply == REPLIES["executorch"]
        assert pane(app, "nobel").conversation.turns == []


async def test_blind_mode_still_waits_for_every_adapter(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path, late={"executorch"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        await pilot.pause()
        assert app.main.blind.on
        await send(pilot, "Who won?")
        assert any("blind mode waits" in n for n in notifications(app))
        assert app.query_one("#prompt", Input).value == "Who won?"  # kept in the input
        assert sends(app) == [] and "Who won?" not in shown(app, "executorch")
