"""Text is text (issue 42): adapter names (files' names), the errors that quote them, prompts
and answers show exactly as written, never read as markup, and no control character from
them reaches the terminal. Before, ``support[lr=1e-4]`` as a pane's name ended the app in a
``MarkupError``, ``[bold]`` vanished into a style, and ESC sequences were drawn raw."""

from __future__ import annotations

import json
import re
from pathlib import Path

from textual.widgets import Input, Label, Static
from textual.widgets._toast import Toast

from lora_tui.demo.build_child import BuildFailed, BuildProgress
from lora_tui.engine.protocol import EngineFailed
from lora_tui.ui.screens.ask import AskScreen
from lora_tui.ui.screens.diff import DiffScreen
from lora_tui.ui.screens.scores import ScoresScreen
from lora_tui.ui.widgets.vote_bar import VoteBar
from tests.support.checks import assert_no_controls
from tests.support.fake_build import FakeBuild
from tests.support.pilot import SIZE, make_app, notifications, pane, screen_text, send
from tests.support.real_app import wait_for

BRACKETS = "support[lr=1e-4]"  # Textual: "Expected markup value"
STYLE = "[bold]loud"  # read as markup, it shows as a bold "loud"
ESCAPED = "esc\x1b[2J\x1b]0;owned\x07name"  # clears the screen, retitles the terminal
ESCAPED_SHOWN = "escname"
BROKEN = "broken[x]"
# Short enough for one line of a pane, so the screen's text holds them whole.
LOAD_ERROR = "/p/b[x].pte: [/INST] [/] \x1b[31mred"
LOAD_ERROR_SHOWN = "/p/b[x].pte: [/INST] [/] red"
PROMPT = "Say [/INST] [bold]hi\x1b[5m!"
PROMPT_SHOWN = "Say [/INST] [bold]hi!"
ANSWER = "Use [/INST] after [b]it[/b] \x1b[41m."
ANSWER_SHOWN = "Use [/INST] after [b]it[/b] ."


def strange_app(tmp_path: Path, names: list[str] | None = None, **options):
    names = names or [BRACKETS, STYLE, ESCAPED]
    replies = {name: ANSWER for name in names}
    return make_app(names, tmp_path, replies=replies, **options)


def toasts(app) -> str:
    return "\n".join(toast.render().plain for toast in app.screen.query(Toast))


async def test_names_errors_prompts_and_answers_show_as_written(tmp_path: Path) -> None:
    app = strange_app(tmp_path, [BRACKETS, STYLE, ESCAPED, BROKEN], fail={BROKEN: LOAD_ERROR})
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await send(pilot, PROMPT)
        await pilot.pause()
        shown = screen_text(app)
        for title in (f"[1] {BRACKETS}", f"[2] {STYLE}", f"[3] {ESCAPED_SHOWN}", f"[4] {BROKEN}"):
            assert title in shown
        assert LOAD_ERROR_SHOWN in shown
        assert shown.count(PROMPT_SHOWN) == 3 and shown.count(ANSWER_SHOWN) == 3
        assert f"{STYLE}  " in shown  # the memory panel's row of it
        assert_no_controls(shown)
        assert (
            pane(app, ESCAPED).conversation.turns[0].text == PROMPT
        )  # what is sent is what was typed

        await pilot.press("ctrl+b")  # the prompt bar names the selected pane
        await pilot.pause()
        assert str(app.query_one("#target", Label).render()) == f"→ {BRACKETS}"
        assert f"Ask {BRACKETS}…" in screen_text(app)


async def test_the_palette_names_adapters_as_written(tmp_path: Path) -> None:
    app = strange_app(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.press(*"unload")
        await pilot.pause(0.5)
        shown = screen_text(app)
        assert f"Unload {BRACKETS}" in shown and f"Free {BRACKETS}'s memory" in shown
        assert f"Unload {STYLE}" in shown and f"Unload {ESCAPED_SHOWN}" in shown
        assert_no_controls(shown)
        await pilot.press("escape")
        await pilot.pause()
        app.main.dialogs.pane_setting(
            app.main.selected_pane, "temperature"
        )  # the selected pane, by name
        await pilot.pause()
        assert isinstance(app.screen, AskScreen)
        assert f"Temperature for {BRACKETS} only" in screen_text(app)


async def test_notifications_quote_paths_errors_and_names_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "t[/]"  # a folder "t[" holding "]": where the transcript goes
    folder.mkdir(parents=True)
    app = strange_app(folder)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        await send(pilot, PROMPT)
        app.action_save_transcript()
        app.main.selected = 1
        app.main.copy_last_reply()
        app.engines[0].on_event(EngineFailed("engine died [/] \x1b[2J"))
        await pilot.pause()
        said = notifications(app)
        assert any(n.startswith(f"saved {folder}/lora-tui-transcript-") for n in said)
        assert f"copied {STYLE}'s last reply ({len(ANSWER)} characters)" in said
        assert "engine died [/] ; started a new one" in said
        shown = toasts(app)
        assert f"copied {STYLE}'s last reply" in shown and "engine died [/] ;" in shown
        assert_no_controls(shown)
        assert pane(app, BRACKETS).state == "ready"  # loaded again into the new engine


async def test_a_prompt_set_with_markup_in_its_prompts_is_scored_and_shown(
    tmp_path: Path,
) -> None:
    prompts = tmp_path / "set[lr=1].jsonl"
    rows = [
        {"prompt": "<s>[INST] hi [/INST]", "keywords": ["[/INST]"], "group": "[/]"},
        {"prompt": "[bold]bold[/bold] \x1b[31mred", "keywords": ["nothing"], "group": "g[x]"},
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    app = strange_app(tmp_path, [BRACKETS, STYLE])
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        app.main.run_prompt_set()
        await pilot.pause()
        app.screen.query_one(Input).value = str(prompts)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen), timeout_s=30)
        await pilot.pause()
        report = app.screen.report
        assert report.score("[/]", BRACKETS) == (1, 1)  # the answer holds "[/INST]"
        shown = screen_text(app)
        for text in ("set[lr=1].jsonl: 2 of 2 prompts", "<s>[INST] hi [/INST]", "[/]"):
            assert text in shown
        assert "[bold]bold[/bold] red" in shown and "g[x]" in shown
        assert BRACKETS in shown and STYLE in shown  # the columns' headings
        assert_no_controls(shown)


async def test_blind_mode_reveals_the_names_and_the_diff_labels_them(tmp_path: Path) -> None:
    app = strange_app(tmp_path, [BRACKETS, STYLE])
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        await send(pilot, PROMPT)
        await wait_for(pilot, lambda: app.query_one(VoteBar).display, timeout_s=30)
        await pilot.press("a")
        await pilot.pause()
        revealed = [n for n in notifications(app) if n.startswith("A = ")]
        assert revealed and f"= {BRACKETS}" in revealed[0] and f"= {STYLE}" in revealed[0]
        shown = screen_text(app)
        for name in (BRACKETS, STYLE):  # on its pane (shuffled), and its row in the tally
            assert re.search(rf"─ \[\d\] [AB] = {re.escape(name)} ─", shown)
            assert re.search(rf"│  {re.escape(name)} +\d  \d  \d", shown)
        await pilot.press("f3")  # names back, then the diff of their answers
        await pilot.pause()
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, DiffScreen)
        shown = screen_text(app)
        pair = {f"{BRACKETS} vs {STYLE}:", f"{STYLE} vs {BRACKETS}:"}  # in the shuffled order
        assert any(labels in shown for labels in pair) and ANSWER_SHOWN in shown
        assert_no_controls(shown)


async def test_a_build_that_fails_quoting_a_path_says_so_as_written(tmp_path: Path) -> None:
    build = FakeBuild()
    app = make_app(["nobel"], tmp_path, build=build)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        build.report(BuildProgress("fill support[lr=1e-4].pte", 1, 2, "[/] step"))
        await pilot.pause()
        shown = str(pane(app, "nobel").query_one(".build-progress", Static).render())
        assert shown.endswith("\n\nfill support[lr=1e-4].pte\n[/] step")
        build.report(BuildFailed("/cache/x[/]/foundation.ptd: cut short \x1b[2J"))
        await pilot.pause()
        shown = screen_text(app)
        assert "build failed: /cache/x[/]/foundation.ptd: cut short" in shown
        assert "/cache/x[/]/foundation.ptd: cut short" in toasts(app)
        assert_no_controls(shown)


async def test_an_adapter_that_does_nothing_says_so_in_its_pane_as_written(
    tmp_path: Path,
) -> None:
    """Issue 44: the engine's NoEffect (its load probe gave the base's logits) becomes one
    line in that adapter's pane, the base's name as written; the other panes show none."""
    base = "base[v2]"
    app = make_app(["zero", "nobel", base], tmp_path, no_effect={"zero": (base, 0.0)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        warning = "no effect: its logits equal base[v2]'s (largest change 0.0)"
        notices = {
            name: [str(n.render()) for n in pane(app, name).query(".notice")]
            for name in ("zero", "nobel", base)
        }
        assert notices == {"zero": [warning], "nobel": [], base: []}
        app.main.selected = 0
        await pilot.press("f2")  # the pane maximized: the warning on one line of the screen
        await pilot.pause()
        assert warning in screen_text(app)
        await pilot.press("f2")
        await send(pilot, "Hello")  # the warning is no part of what the adapter is sent
        assert [m.role for m in pane(app, "zero").conversation.messages] == ["user", "assistant"]
