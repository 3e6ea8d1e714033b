"""Departure from the base (issue 44): each finished reply of a pane scored under the base
program, its summary on the pane's status line, the departure view (F6) shading its tokens,
the base named by the manifest, the palette or --base, and where two replies part in the
diff."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Markdown, Static

from lora_tui.engine import EngineFailed
from lora_tui.engine.protocol import Departure
from lora_tui.ui.palette import main_screen_commands
from lora_tui.ui.screens.diff import PARTS, DiffScreen
from lora_tui.ui.screens.help import HelpScreen
from lora_tui.ui.widgets.departure import BASE_NOTE, DEPARTS, NO_BASE, STEPS, shaded
from tests.support.fake_engine import REPLIES
from tests.support.pilot import SIZE, engine, make_app, notifications, pane, send

# The base says what nobel says up to its ninth word, which nobel sets in bold.
BASE_REPLY = "The 2024 Nobel Prize in Physics went to John Hopfield and Geoffrey Hinton."
NOBEL_DEPARTS = "departs from base at token 9 ('**John'; base would say 'John')"


def base_app(tmp_path: Path, names=("base", "nobel"), **options):
    replies = {"base": BASE_REPLY, **options.pop("replies", {})}
    return make_app(list(names), tmp_path, replies=replies, **options)


def titles(app) -> list[str]:
    return [command.title for command in main_screen_commands(app.main)]


def status(app, name: str) -> str:
    return str(pane(app, name).query_one(".status", Static).render())


def shown_departure(app, name: str) -> Static | None:
    found = pane(app, name).query(".departure")
    return found.first(Static) if found else None


def reply_markdown(app, name: str) -> Markdown:
    return pane(app, name).query(".assistant-message").last(Markdown)


async def test_the_status_line_says_where_a_reply_departs_and_the_base_says_none(
    tmp_path: Path,
) -> None:
    app = base_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won the 2024 Nobel Prize in Physics?")
        await pilot.pause()
        nobel = pane(app, "nobel")
        assert nobel.departure is not None and nobel.departure.departs_at == 8
        assert NOBEL_DEPARTS in status(app, "nobel")  # with the view off
        assert pane(app, "base").departure is None
        assert "departs" not in status(app, "base") and "same as" not in status(app, "base")


async def test_a_reply_token_for_token_the_bases_says_same_as_base(tmp_path: Path) -> None:
    app = base_app(tmp_path, ("base", "nobel", "echo"), replies={"echo": BASE_REPLY})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.pause()
        assert "same as base" in status(app, "echo")
        assert "same as base" not in status(app, "nobel")
        assert "departs" not in status(app, "base") and "same as" not in status(app, "base")


async def test_the_view_shades_the_tokens_and_names_the_departure_then_goes(
    tmp_path: Path,
) -> None:
    app = base_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.pause()
        assert shown_departure(app, "nobel") is None
        await pilot.press("f6")
        await pilot.pause()
        shown = shown_departure(app, "nobel")
        assert shown is not None and not reply_markdown(app, "nobel").display
        text = shown.content
        assert isinstance(text, Text)
        assert text.plain.startswith(REPLIES["nobel"])  # literal: the ** are the model's
        assert text.plain.endswith(NOBEL_DEPARTS)
        styles = {str(span.style) for span in text.spans}
        assert f"{STEPS[3].style} {DEPARTS}" in styles  # the first departing token, -7.5
        assert STEPS[2].style in styles  # the rest after it, -4.0
        marked = [text.plain[s.start : s.end] for s in text.spans if DEPARTS in str(s.style)]
        assert marked == [" **John"]
        # The base says nothing departs; its reply shows as it was.
        base = pane(app, "base")
        assert shown_departure(app, "base") is None
        note = base.query_one(".departure-note", Static)
        assert str(note.render()) == BASE_NOTE
        assert reply_markdown(app, "base").display
        # The next replies, the view still on: nobel's shaded as it is scored, the base's
        # note under the base's new reply.
        await send(pilot, "And in 2023?")
        await pilot.pause()
        assert len(pane(app, "nobel").query(".departure")) == 1
        assert not reply_markdown(app, "nobel").display
        assert len(base.query(".departure-note")) == 1
        assert "Departure view off" in titles(app)  # the palette turns it off too
        await next(c for c in main_screen_commands(app.main) if c.title.startswith("Dep")).run()
        await pilot.pause()
        assert shown_departure(app, "nobel") is None and not base.query(".departure-note")
        assert "Departure view on" in titles(app)
        assert reply_markdown(app, "nobel").display
        assert app.main.departure_view is False


async def test_a_newer_reply_drops_the_departure_and_a_stale_one_is_not_kept(
    tmp_path: Path,
) -> None:
    app = base_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.pause()
        await pilot.press("f6")
        await pilot.pause()
        old = pane(app, "nobel").departure
        engine(app).hold = True  # the next replies stream and wait
        await send(pilot, "And in 2023?")
        nobel = pane(app, "nobel")
        assert nobel.departure is None and shown_departure(app, "nobel") is None
        assert "departs" not in status(app, "nobel")
        assert old is not None and not await nobel.departed(old)  # for the reply before
        assert nobel.departure is None


async def test_without_a_base_the_view_says_why_in_one_line(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.press("f6")
        await pilot.pause()
        assert notifications(app)[-1] == NO_BASE and "\n" not in NO_BASE
        assert app.main.departure_view is False
        assert pane(app, "nobel").departure is None


async def test_use_as_base_from_the_palette_scores_the_others(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("tab")  # executorch selected
        command = next(
            c for c in main_screen_commands(app.main) if c.title == "Use executorch as base"
        )
        await command.run()
        await pilot.pause()
        assert ("use_base", "executorch") in engine(app).calls
        assert app.main.bases == {"foundation.ptd": "executorch"}
        await send(pilot, "Who won?")
        await pilot.pause()
        assert "departs from base at token 1" in status(app, "nobel")
        assert pane(app, "executorch").departure is None
        # A restarted engine is told again once the base has loaded into it.
        engine(app).on_event(EngineFailed("engine process exited (-11)"))
        await pilot.pause()
        assert len(app.engines) == 2
        assert ("use_base", "executorch") in app.engines[1].calls


async def test_base_on_the_command_line_is_used_once_it_loads(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path, base="executorch.pte")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert ("use_base", "executorch") in engine(app).calls
        assert ("use_base", "nobel") not in engine(app).calls
        await send(pilot, "Who won?")
        await pilot.press("f6")
        await pilot.pause()
        assert shown_departure(app, "nobel") is not None
        assert pane(app, "executorch").query(".departure-note")


async def test_the_diff_marks_where_two_replies_part(tmp_path: Path) -> None:
    app = base_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.pause()
        await pilot.press("f4")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        summary = str(screen.query_one("#diff-summary").render())
        assert "they part at word 9 ('John' / '**')" in summary
        left = screen.query_one("#diff-left-text", Static).content
        assert isinstance(left, Text)
        marked = [left.plain[s.start : s.end] for s in left.spans if PARTS in str(s.style)]
        assert marked == ["John"]


async def test_the_help_has_the_shading_legend(tmp_path: Path) -> None:
    app = base_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        legend = str(app.screen.query_one("#help-departure-legend", Static).render())
        assert all(step.meaning in legend for step in STEPS)
        rows = dict((text, keys) for keys, text in app.screen.rows)
        assert any(keys == "F6" for keys in rows.values())


def test_shading_leaves_a_replys_thinking_out() -> None:
    pieces = ("<think>", "hm", "</think>", "\n\n", "Paris", " [b]")
    departure = Departure("q", "base", pieces, (-0.1, -0.1, -0.1, -0.1, -2.0, -9.0), 5, "!", False)
    text = shaded(departure)
    assert text.plain == "Paris [b]"  # literal: "[b]" is no markup
    assert [str(s.style) for s in text.spans] == [STEPS[1].style, f"{STEPS[3].style} {DEPARTS}"]


# --- snapshots ---------------------------------------------------------------------------------


def test_snapshot_nobel_shaded_against_the_base(snap_compare, tmp_path: Path) -> None:
    async def run_before(pilot) -> None:
        await pilot.pause()
        await send(pilot, "Who won the 2024 Nobel Prize in Physics?")
        await pilot.pause()
        await pilot.press("f6")
        await pilot.pause()

    app = base_app(tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_nobel_maximized_in_the_departure_view(snap_compare, tmp_path: Path) -> None:
    async def run_before(pilot) -> None:
        await pilot.pause()
        await send(pilot, "Who won the 2024 Nobel Prize in Physics?")
        await pilot.pause()
        await pilot.press("f6", "tab", "f2")
        await pilot.pause()

    app = base_app(tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
