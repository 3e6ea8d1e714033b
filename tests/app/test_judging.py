"""Judging adapters: blind mode and its votes, the tally, word diffs, regenerate, per-pane
seeds, prompt sets in the app, and the results file with its exports (issue 16)."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import Input

import lora_tui.judging.evaluate
from lora_tui.engine import Message, ReplyDone, ReplyEnd
from lora_tui.judging.arena import ALL_BAD
from lora_tui.judging.records import VoteRecord
from lora_tui.judging.results import read_results
from lora_tui.ui.app import LoraTuiApp
from lora_tui.ui.screens.diff import DiffScreen
from lora_tui.ui.screens.scores import ScoresScreen
from lora_tui.ui.widgets.memory_panel import MemoryPanel
from lora_tui.ui.widgets.tally_panel import TallyPanel
from lora_tui.ui.widgets.vote_bar import VoteBar
from tests.support.fake_engine import FIXED_STATS, REPLIES
from tests.support.judging import NAMES
from tests.support.pilot import SIZE, engine, make_app, notifications, send
from tests.support.real_app import wait_for

# --- the arithmetic ---------------------------------------------------------------------------


# --- blind mode in the app --------------------------------------------------------------------


def saving_app(tmp_path: Path, names: list[str] = NAMES, **options) -> LoraTuiApp:
    """An app that writes tmp_path/results.jsonl, over stand-in program files."""
    for name in names:
        (tmp_path / f"{name}.pte").write_bytes(name.encode())
    results = tmp_path / "results.jsonl"
    return make_app(names, tmp_path, results_path=results, program_dir=tmp_path, **options)


def blind_app(tmp_path: Path, names: list[str] = NAMES, **options) -> LoraTuiApp:
    app = saving_app(tmp_path, names, **options)
    app.main.blind.rng = random.Random(4)  # a fixed shuffle, for stable snapshots
    return app


def titles(app: LoraTuiApp) -> list[str]:
    return [str(pane.border_title) + str(pane.border_subtitle) for pane in app.main.panes.values()]


async def test_blind_mode_hides_names_until_the_vote_then_reveals_them(tmp_path: Path) -> None:
    app = blind_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        await pilot.pause()
        assert app.main.blind.on and not app.query_one(MemoryPanel).display
        assert app.query_one(TallyPanel).display
        await send(pilot, "Who won the 2024 Nobel Prize in Physics?")
        await pilot.pause()
        shown = titles(app)
        assert not any(name in title for title in shown for name in NAMES), shown
        assert shown[0].startswith("[1] A") and shown[1].startswith("[2] B")
        bar = app.query_one(VoteBar)
        assert bar.display and bar.has_focus  # every answer is in: time to vote
        order = list(app.main.panes)  # the adapters behind A and B
        await pilot.press("b")
        await pilot.pause()
        assert not bar.display and app.query_one("#prompt", Input).has_focus
        assert titles(app)[1].startswith(f"[2] B = {order[1]}")
        standings = app.main.blind.tally.standings
        assert (standings[order[1]].wins, standings[order[0]].losses) == (1, 1)
        await pilot.press("b")  # the vote is in: a second one is not counted
        assert app.main.blind.tally.votes == 1
    records = read_results(tmp_path / "results.jsonl")
    votes = [r for r in records if isinstance(r, VoteRecord)]
    assert (
        votes == [replace(votes[0], adapters=tuple(order), verdict=order[1])]
        and votes[0].round == records[0].round == records[1].round
    )


async def test_the_vote_bar_never_takes_the_prompts_keys(tmp_path: Path) -> None:
    app = blind_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t", "x")  # vote keys, typed before any vote: they are text
        assert app.query_one("#prompt", Input).value == "tx"
        assert not app.query_one(VoteBar).can_focus


async def test_blind_mode_leaves_out_an_adapter_that_failed_to_load(tmp_path: Path) -> None:
    app = blind_app(tmp_path, ["base", *NAMES], fail={"base": "damaged program"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f3", "ctrl+b")  # all/one stays "all" in blind mode
        assert app.main.broadcast
        await send(pilot, "Who won?")
        await pilot.pause()
        assert app.main.replies.rounds.last is not None and sorted(
            app.main.replies.rounds.last.adapters
        ) == sorted(NAMES)
        assert app.query_one(VoteBar).display


async def test_blind_mode_shuffles_the_panes_for_every_prompt(tmp_path: Path) -> None:
    app = blind_app(tmp_path, ["base", "nobel", "executorch"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.main.action_toggle_blind()
        orders = []
        for number in range(6):
            await send(pilot, f"Question {number}")
            await pilot.pause()
            orders.append(tuple(app.main.panes))
            grid = app.main.query_one("#panes")
            assert [pane.adapter_name for pane in grid.children] == list(orders[-1])
            await pilot.press("t")  # a tie
            await pilot.pause()
        assert len(set(orders)) > 1
        assert app.main.blind.tally.votes == 6
        assert all(s.ties == 6 for s in app.main.blind.tally.standings.values())
        # Blind mode off: names again, the memory panel back, the tally kept.
        await pilot.press("f3")
        await pilot.pause()
        assert all(name in title for name, title in zip(app.main.panes, titles(app), strict=True))
        assert app.query_one(MemoryPanel).display and app.main.blind.tally.votes == 6


async def test_blind_mode_from_the_palette_and_export_from_it(tmp_path: Path) -> None:
    app = blind_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p", *"Blind mode on")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert app.main.blind.on
        await send(pilot, "Who won?")
        await pilot.pause()
        await pilot.press("x")  # all bad
        await pilot.pause()
        await pilot.press("ctrl+p", *"Export results as JSON")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.5)
    exported = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert {a["vote"] for a in exported["answers"]} == {ALL_BAD}
    assert {s["all_bad"] for s in exported["tally"]} == {1}


async def until_the_vote(pilot) -> None:
    """Until every answer is in and the vote bar shows: on a loaded machine the fake
    engine's replies can take longer than one pause."""
    await wait_for(pilot, lambda: pilot.app.query_one(VoteBar).display, timeout_s=30)


def test_snapshot_blind_mode_waiting_for_the_vote(snap_compare, tmp_path: Path) -> None:
    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.press("f3")
        await send(pilot, "Who won the 2024 Nobel Prize in Physics?")
        await until_the_vote(pilot)
        pilot.app.clear_notifications()  # toasts expire on the wall clock (see below)
        await pilot.pause()

    assert snap_compare(blind_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_snapshot_blind_vote_revealed_with_the_tally(snap_compare, tmp_path: Path) -> None:
    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.press("f3")
        for question in ("Who won the 2024 Nobel Prize in Physics?", "What is a .pte file?"):
            await send(pilot, question)
            await until_the_vote(pilot)
            await pilot.press("a")
            await pilot.pause()
        # Blind mode's toast expires on the wall clock: whether it still shows depended on
        # how busy the machine was (it showed once in a full suite run). Not what this shows.
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(blind_app(tmp_path), terminal_size=SIZE, run_before=run_before)


# --- diff, regenerate, per-pane settings --------------------------------------------------------


def test_snapshot_diff_of_two_answers(snap_compare, tmp_path: Path) -> None:
    async def run_before(pilot) -> None:
        await pilot.pause()
        await send(pilot, "Tell me something.")
        await pilot.pause()
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(pilot.app.screen, DiffScreen)

    assert snap_compare(make_app(NAMES, tmp_path), terminal_size=SIZE, run_before=run_before)


async def test_diff_needs_two_answers_and_compares_the_selected_one(tmp_path: Path) -> None:
    app = make_app(["base", *NAMES], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f4")
        assert not isinstance(app.screen, DiffScreen)  # nothing answered yet
        await send(pilot, "Hello")
        app.main.selected = 1
        await pilot.press("f4")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        assert screen.answers[screen.left] == ("nobel", REPLIES["nobel"])
        assert screen.answers[screen.right][0] == "executorch"
        await pilot.press("tab")  # the next pane that is not the left one
        assert screen.answers[screen.right][0] == "base"


async def test_regenerate_answers_again_and_a_fixed_seed_repeats(tmp_path: Path) -> None:
    app = saving_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.session.settings = app.session.settings.__class__(temperature=0.8, max_new_tokens=32)
        nobel = app.main.panes["nobel"]
        nobel.set_override("seed", 7)
        await send(pilot, "Who won?")
        first = nobel.conversation.last_reply
        await pilot.press("ctrl+r")  # the selected pane: nobel
        await pilot.pause()
        # The same conversation again, less the reply it replaces.
        assert engine(app).calls[-1] == ("send", ("nobel",), "Who won?")
        assert engine(app).conversations["nobel"] == [Message("user", "Who won?")]
        assert nobel.conversation.last_reply == first and "seed 7" in (first or "")
        assert [t.role for t in nobel.conversation.turns] == [
            "user",
            "assistant",
        ]  # replaced, not added
        assert len(nobel.scroll_view.query(".user-message")) == 1
        await pilot.press("f5")  # every pane; executorch draws a new seed each time
        await pilot.pause()
        seeds = [s.seed for names, s in engine(app).sent_settings if names == ("executorch",)]
        assert len(seeds) == 2 and seeds[0] != seeds[1]
    records = read_results(tmp_path / "results.jsonl")
    assert [r.adapter for r in records] == [
        "nobel",
        "executorch",
        "nobel",
        "nobel",
        "executorch",
    ]
    assert len({r.round for r in records}) == 1
    assert [r.settings["seed"] for r in records if r.adapter == "nobel"] == [7, 7, 7]


async def test_per_pane_temperature_from_the_palette(tmp_path: Path) -> None:
    app = make_app(NAMES, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.main.selected = 1
        app.main.dialogs.pane_setting(app.main.selected_pane, "temperature")
        await pilot.pause()
        app.screen.query_one(Input).value = "1.2"
        await pilot.press("enter")
        await pilot.pause()
        assert "T 1.2" in str(app.main.panes["executorch"].query_one(".status").content)
        app.main.dialogs.pane_setting(app.main.selected_pane, "temperature")
        await pilot.press("escape")  # Esc keeps it
        assert app.main.panes["executorch"].overrides == {"temperature": 1.2}
        await send(pilot, "Hello")
        sent = dict(engine(app).sent_settings)
        assert sent[("nobel",)].temperature == 0.0
        assert sent[("executorch",)].temperature == 1.2


# --- a prompt set in the app -------------------------------------------------------------------


async def start_prompt_set(pilot, prompts: Path) -> None:
    """ "Run prompt set…", as the palette does it: the dialog, the path, Enter."""
    pilot.app.main.run_prompt_set()
    await pilot.pause()
    pilot.app.screen.query_one(Input).value = str(prompts)
    await pilot.press("enter")


async def wait_for_scores(pilot) -> None:
    """Until the prompt set's scores show (the run is a worker on the app's loop)."""
    for _ in range(20):
        await pilot.pause(0.05)
        if isinstance(pilot.app.screen, ScoresScreen):
            return


async def test_prompt_set_runs_every_prompt_through_every_pane_and_scores_it(
    tmp_path: Path,
) -> None:
    prompts = tmp_path / "set.jsonl"
    rows = [
        {"prompt": "Who won physics in 2024?", "keywords": ["Hopfield"], "group": "nobel"},
        {"prompt": "What is a .pte file?", "keywords": [".pte", "program"], "group": "et"},
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    app = saving_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await start_prompt_set(pilot, prompts)
        await wait_for_scores(pilot)
        screen = app.screen
        assert isinstance(screen, ScoresScreen)
        report = screen.report
        assert report.score("nobel", "nobel") == (1, 1) and report.score("nobel", "executorch") == (
            0,
            1,
        )
        assert report.score("et", "executorch") == (1, 1) and report.score("et", "nobel") == (0, 1)
        sends = [call for call in engine(app).calls if call[0] == "send"]
        assert [call[2] for call in sends] == [r["prompt"] for r in rows]
    saved = read_results(tmp_path / "results.jsonl")
    assert [(r.group, r.adapter, r.right) for r in saved] == [
        ("nobel", "nobel", True),
        ("nobel", "executorch", False),
        ("et", "nobel", False),
        ("et", "executorch", True),
    ]


async def test_a_bad_prompt_set_is_one_line(tmp_path: Path) -> None:
    app = make_app(NAMES, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await start_prompt_set(pilot, tmp_path / "missing.jsonl")
        await pilot.pause()
        assert not isinstance(app.screen, ScoresScreen)
        assert any("no such file" in str(n.message) for n in app._notifications)


# Matches neither fixed reply, and makes even the regex package backtrack on them: only its
# time limit ends it (under re it ran for ever, on the app's loop).
CATASTROPHIC = r"(\w|.)*\d$"


def catastrophic_prompt_set(tmp_path: Path) -> Path:
    prompts = tmp_path / "set.jsonl"
    row = {"prompt": "Who won physics in 2024?", "regex": CATASTROPHIC, "group": "nobel"}
    prompts.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return prompts


async def test_keys_work_while_a_prompt_sets_answers_are_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A prompt's regex may take a second per answer: scoring must run off the app's loop.
    # Here marking blocks until the test lets it go, so the keys below are handled only if
    # the loop is free while an answer is being marked (a slow machine or a fast one alike).
    marking, release = threading.Event(), threading.Event()
    mark = lora_tui.judging.evaluate.PromptCase.mark

    def slow_mark(
        case: lora_tui.judging.evaluate.PromptCase, answer: str
    ) -> lora_tui.judging.evaluate.Mark:
        marking.set()
        release.wait(30)
        return mark(case, answer)

    monkeypatch.setattr(lora_tui.judging.evaluate.PromptCase, "mark", slow_mark)
    app = make_app(["nobel"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await start_prompt_set(pilot, catastrophic_prompt_set(tmp_path))
        await wait_for(pilot, marking.is_set)
        prompt = app.query_one("#prompt", Input)
        prompt.focus()
        await pilot.press("h", "i")
        assert prompt.value == "hi"
        assert not isinstance(app.screen, ScoresScreen)  # still scoring, on its thread
        release.set()
        await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen))
        await pilot.press("ctrl+q")
        assert app.return_code == 0


async def test_a_regex_out_of_time_is_noted_and_counted_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lora_tui.judging.evaluate, "REGEX_SECONDS", 0.2, raising=False)
    app = saving_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await start_prompt_set(pilot, catastrophic_prompt_set(tmp_path))
        await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen), timeout_s=60)
        assert app.screen.report.score("nobel", "nobel") == (0, 1)
        notes = [str(n.message) for n in app._notifications if "counted wrong" in str(n.message)]
        assert notes == [f"regex {CATASTROPHIC!r} took over 0.2 s; counted wrong"]
    saved = read_results(tmp_path / "results.jsonl")  # scored on the writer's thread
    assert sorted(r.adapter for r in saved) == sorted(NAMES)
    assert all(r.right is False and r.note == notes[0] for r in saved)


async def test_escape_stops_a_prompt_set_and_shows_what_was_answered(tmp_path: Path) -> None:
    prompts = tmp_path / "set.jsonl"
    prompts.write_text('{"prompt": "one"}\n{"prompt": "two"}\n', encoding="utf-8")
    app = make_app(NAMES, tmp_path, hold=True)  # replies stream until cancelled
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await start_prompt_set(pilot, prompts)
        await pilot.pause()
        assert all(pane.state == "generating" for pane in app.main.panes.values())
        await pilot.press("escape")
        await wait_for_scores(pilot)
        assert isinstance(app.screen, ScoresScreen) and app.screen.report.results == []
        assert "0 of 2 prompts" in app.screen.title_text
        assert [call[2] for call in engine(app).calls if call[0] == "send"] == ["one"]


async def test_a_pane_unloaded_during_a_prompt_set_leaves_it_and_the_set_goes_on(
    tmp_path: Path,
) -> None:
    # The set looked up every starting pane's reply in each round: a pane unloaded (or whose
    # reload failed after an engine restart) had none, and the run ended in a KeyError.
    prompts = tmp_path / "set.jsonl"
    rows = [
        {"prompt": "Who won physics in 2024?", "keywords": ["Hopfield"], "group": "nobel"},
        {"prompt": "What is a .pte file?", "keywords": [".pte"], "group": "et"},
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    app = make_app([*NAMES, "base"], tmp_path, hold=True)  # the first prompt's replies wait
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await start_prompt_set(pilot, prompts)
        fake = engine(app)
        await wait_for(pilot, lambda: len(fake.running) == 3)
        await app.main.unload("base")
        fake.hold = False  # the second prompt is answered at once
        for name in list(fake.running):  # base's reply arrives after its pane has gone
            del fake.running[name]
            fake.on_event(ReplyDone(name, REPLIES.get(name, ""), ReplyEnd.STOP, FIXED_STATS))
        await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen), timeout_s=30)
        report = app.screen.report
        assert report.adapters == NAMES and "2 of 2 prompts" in app.screen.title_text
        assert report.score("nobel", "nobel") == (1, 1) and report.score("et", "executorch") == (
            1,
            1,
        )
        assert any("base stopped answering" in n for n in notifications(app))
        sends = [call for call in fake.calls if call[0] == "send"]
        assert [call[1] for call in sends] == [("nobel", "executorch", "base"), tuple(NAMES)]
