"""The app, headless: every key and flow (pilot) and the main screens (snapshots)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from textual._compositor import Compositor
from textual.widgets import Input, Static

from lora_tui.engine import Message
from lora_tui.engine.memory import PACKING, ToolLayout, ToolMemory
from lora_tui.ui.app import LoraTuiApp
from lora_tui.ui.screens.ask import AskScreen
from lora_tui.ui.screens.help import HelpScreen
from lora_tui.ui.widgets.memory_panel import MemoryPanel
from tests.support.fake_engine import FAKE_LANE, FAKE_WORKER, PACKING_RANGES, fixed_tool_memory
from tests.support.pilot import SIZE, engine, make_app, pane, send


async def test_send_goes_to_every_adapter(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        assert ("send", ("nobel", "executorch"), "Who won?") in engine(app).calls
        assert (
            pane(app, "nobel").conversation.last_reply
            and "Hopfield" in pane(app, "nobel").conversation.last_reply
        )
        assert ".pte" in (pane(app, "executorch").conversation.last_reply or "")
        assert app.query_one("#prompt", Input).value == ""
        assert pane(app, "nobel").state == "ready"
        status = str(pane(app, "nobel").query_one(".status").render())
        # Its own speed, and the two panes' together (they answered one prompt at once).
        assert "26.4 tok/s" in status and "52.8 together" in status


async def test_a_lone_reply_shows_no_together_figure(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.press("tab", "ctrl+b")
        await send(pilot, "And in 2023?")
        status = str(pane(app, "executorch").query_one(".status").render())
        assert "26.4 tok/s" in status and "together" not in status
        assert "52.8 together" in str(pane(app, "nobel").query_one(".status").render())


async def test_send_to_the_selected_adapter_only(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("tab", "ctrl+b")
        assert app.main.broadcast is False
        assert "→ executorch" in str(app.query_one("#target").render())
        await send(pilot, "What is a .pte?")
        assert ("send", ("executorch",), "What is a .pte?") in engine(app).calls
        assert pane(app, "nobel").conversation.turns == []


async def test_keys_switch_between_adapters(tmp_path: Path) -> None:
    app = make_app(["a", "b", "c"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.main.selected == 0 and pane(app, "a").selected
        await pilot.press("tab")
        assert app.main.selected == 1 and pane(app, "b").selected and not pane(app, "a").selected
        await pilot.press("shift+tab", "shift+tab")
        assert app.main.selected == 2
        await pilot.press("alt+1")
        assert app.main.selected == 0
        app.set_focus(None)
        await pilot.press("2")  # digits select when the prompt is not focused
        assert app.main.selected == 1


async def test_switching_redraws_only_what_changed(tmp_path: Path, monkeypatch) -> None:
    # A Tab used to re-render the whole screen (tens of ms with long conversations).
    app = make_app(["a", "b"], tmp_path)
    full_renders: list[int] = []
    render_full_update = Compositor.render_full_update

    def counting(self, *args, **kwargs):
        full_renders.append(1)
        return render_full_update(self, *args, **kwargs)

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        monkeypatch.setattr(Compositor, "render_full_update", counting)
        await pilot.press("tab", "tab", "ctrl+b", "ctrl+b")
        await pilot.pause()
        assert app.main.selected == 0 and app.main.broadcast
        assert full_renders == []


async def test_maximize_and_restore(tmp_path: Path) -> None:
    app = make_app(["a", "b"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("tab", "f2")
        assert app.main.maximized is pane(app, "b")
        await pilot.press("shift+tab")  # switching keeps the maximized view on the selection
        assert app.main.maximized is pane(app, "a")
        await pilot.press("f2")
        assert app.main.maximized is None


async def test_escape_cancels_and_keeps_the_partial_reply(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        assert pane(app, "nobel").state == "generating"
        await pilot.press("escape")
        await pilot.pause()
        assert ("cancel", None) in engine(app).calls
        nobel = pane(app, "nobel")
        assert nobel.state == "cancelled"
        assert nobel.conversation.turns[-1].note == "cancelled" and nobel.conversation.turns[
            -1
        ].text.startswith("The 2024")


async def test_load_another_program_while_running(tmp_path: Path) -> None:
    app = make_app(["nobel"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.main.load_programs()
        await pilot.pause()
        assert isinstance(app.screen, AskScreen)
        app.screen.query_one(Input).value = "/artifacts/executorch.pte"
        await pilot.press("enter")
        await pilot.pause()
        assert ("load", "/artifacts/executorch.pte", "executorch") in engine(app).calls
        assert pane(app, "executorch").state == "ready"
        assert set(app.query_one(MemoryPanel).adapters) == {"nobel", "executorch"}


async def test_unload_frees_the_pane(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        commands = system_command_titles(app)
        assert "Unload nobel" in commands and "Save transcript" in commands
        # Through the palette, as a person does it: Ctrl+P, type, Enter.
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"unload nob")
        await pilot.pause(0.5)  # the palette searches in the background
        await pilot.press("enter")
        await pilot.pause()
        assert ("unload", "nobel") in engine(app).calls
        assert list(app.main.panes) == ["executorch"]
        assert set(app.query_one(MemoryPanel).adapters) == {"executorch"}


async def test_save_transcript(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.press("ctrl+s")
        await pilot.pause()
    saved = list(tmp_path.glob("lora-tui-transcript-*.md"))
    assert len(saved) == 1
    text = saved[0].read_text()
    assert "## nobel" in text and "## executorch" in text and "Who won?" in text
    assert "Geoffrey Hinton" in text


async def test_clear_forgets_conversations(tmp_path: Path) -> None:
    app = make_app(["nobel"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        engine(app).hold = True
        await send(pilot, "And in 2025?")
        await pilot.press("ctrl+l")  # while it answers: the cancelled reply arrives after
        await pilot.pause()
        assert ("clear", None) in engine(app).calls
        assert pane(app, "nobel").conversation.turns == []
        engine(app).hold = False
        await send(pilot, "Hello")
        assert engine(app).conversations["nobel"] == [Message("user", "Hello")]


async def test_failed_adapter_shows_its_error_and_others_work(tmp_path: Path) -> None:
    app = make_app(
        ["nobel", "broken"],
        tmp_path,
        fail={"broken": "/artifacts/broken.pte: truncated (4000 of 127360 bytes)"},
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert pane(app, "broken").state == "error"
        await send(pilot, "Who won?")
        assert ("send", ("nobel",), "Who won?") in engine(app).calls


async def test_help_lists_every_binding(tmp_path: Path) -> None:
    app = make_app(["nobel"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        listed = " ".join(keys for keys, _ in app.screen.rows)
        for key in ("Enter", "Tab", "F2", "Ctrl+B", "Esc", "Ctrl+L", "Ctrl+S", "Ctrl+P", "Ctrl+Q"):
            assert key in listed
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_settings_from_the_palette(tmp_path: Path) -> None:
    app = make_app(["nobel"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.main.dialogs.temperature()
        await pilot.pause()
        app.screen.query_one(Input).value = "0.7"
        await pilot.press("enter")
        app.main.dialogs.max_tokens()
        await pilot.pause()
        app.screen.query_one(Input).value = "64"
        await pilot.press("enter")
        await pilot.pause()
        assert (app.session.settings.temperature, app.session.settings.max_new_tokens) == (0.7, 64)
        await send(pilot, "Hi")


async def test_suggested_prompt_from_the_palette(tmp_path: Path) -> None:
    suggestions = {"nobel": ["Who won the 2025 Nobel Prize in Physics?"]}
    app = make_app(["nobel"], tmp_path, suggestions=suggestions)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.press(*"2025 Nobel Prize in Physics")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        prompt = app.query_one("#prompt", Input)
        assert prompt.value == "Who won the 2025 Nobel Prize in Physics?"
        assert prompt.has_focus
        assert engine(app).calls == [] or all(call[0] != "send" for call in engine(app).calls)


async def test_quantization_shows_on_the_pane_and_in_the_memory_panel(tmp_path: Path) -> None:
    app = make_app(["q-nobel", "q-executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert str(pane(app, "q-nobel").border_subtitle).endswith("· 8da4w g32")
        shown = str(app.query_one("#memory-sharing").render())
        assert "foundation.ptd 513 MiB (8da4w g32)" in shown


async def test_the_memory_panel_says_when_threads_cannot_follow_the_work(tmp_path: Path) -> None:
    """Issue 45: an engine whose runtime cannot resize its thread pool keeps each lane to its
    share of the cores, and says so beside weight sharing; one that can says nothing."""
    note = "threads fixed at 1 per lane: [b]this[/b] ExecuTorch's thread pool cannot be resized"
    app = make_app(["nobel", "executorch"], tmp_path, threads_note=note)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert note in str(app.query_one("#memory-sharing").render())  # literal, markup and all
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "threads" not in str(app.query_one("#memory-sharing").render())


async def test_the_memory_panel_breaks_the_whole_tool_down(tmp_path: Path) -> None:
    """The panel's thread reads the whole tool with where the engine said things are: its
    worker's packing and each adapter's load (process and addresses). It shows what holds
    the memory, a row each, and each adapter's own in its row of the table; an adapter
    unloaded leaves the layout."""
    layouts: list[ToolLayout] = []

    def tool_memory(layout: ToolLayout) -> ToolMemory:
        layouts.append(layout)
        return fixed_tool_memory(layout)

    app = make_app(["nobel", "executorch"], tmp_path, tool_memory=tool_memory)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.pause()
        layout = app.main.memory_panel.tool_layout
        held = {(h.name, h.process) for h in layout.holdings}
        assert held == {(PACKING, FAKE_WORKER), ("nobel", FAKE_LANE), ("executorch", FAKE_LANE)}
        assert next(h for h in layout.holdings if h.name == PACKING).ranges == PACKING_RANGES
        assert layouts[-1] is layout  # read again once the last load changed it
        now = shown(app.query_one("#memory-now", Static))
        tool = fixed_tool_memory(layout)
        assert f"{tool.total.pss_mib:,.0f}" in now
        for part in ("foundation file", "packed weights", "runtime", "adapters (now)", "app"):
            assert part in now
        for share in (tool.packed_weights, tool.runtime, tool.adapters_total):
            assert any(
                row.split()[-2:] == [f"{share.rss_mib:,.0f}", f"{share.pss_mib:,.0f}"]
                for row in now.splitlines()
            )
        rows = shown(app.query_one("#memory-adapters", Static)).splitlines()
        nobel = next(row for row in rows if "nobel" in row)
        assert nobel.split()[1:3] == ["+556", "115"]  # PSS at its load, and held now
        await app.main.unload("nobel")
        await pilot.pause()
        await pilot.pause()
        assert {h.name for h in app.main.memory_panel.tool_layout.holdings} == {
            PACKING,
            "executorch",
        }
        assert "nobel" not in shown(app.query_one("#memory-adapters", Static))


def shown(widget: Static) -> str:
    """What a Static shows (a Rich table too), as plain text at its width."""
    console = Console(width=widget.content_region.width, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


# --- snapshots --------------------------------------------------------------------------------


def test_snapshot_two_adapters(snap_compare, tmp_path: Path) -> None:
    async def run_before(pilot) -> None:
        await pilot.pause()
        await send(pilot, "Who won the 2024 Nobel Prize in Physics?")
        await pilot.pause()

    app = make_app(["nobel", "executorch"], tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_four_adapters(snap_compare, tmp_path: Path) -> None:
    app = make_app(["base", "nobel", "executorch", "mixed"], tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: pilot.pause())


def test_snapshot_reply_streaming(snap_compare, tmp_path: Path) -> None:
    async def run_before(pilot) -> None:
        await pilot.pause()
        await send(pilot, "Who won the 2024 Nobel Prize in Physics?")
        await pilot.pause()

    app = make_app(["nobel", "executorch"], tmp_path, hold=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_help(snap_compare, tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    assert snap_compare(app, terminal_size=SIZE, press=["f1"])


def test_snapshot_error_pane(snap_compare, tmp_path: Path) -> None:
    app = make_app(
        ["nobel", "broken"],
        tmp_path,
        fail={
            "broken": "/artifacts/broken.pte: built for another foundation, "
            "not /artifacts/foundation.ptd"
        },
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: pilot.pause())


def test_snapshot_thinking_folded(snap_compare, tmp_path: Path) -> None:
    """A Qwen3-style reply with thinking on: the thought folded and dimmed, then the answer."""

    async def run_before(pilot) -> None:
        await pilot.pause()
        pilot.app.main.dialogs.toggle_thinking()
        await send(pilot, "Capital of France?")
        await pilot.pause()

    app = make_app(["qwen3", "nobel"], tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def system_command_titles(app: LoraTuiApp) -> list[str]:
    from lora_tui.ui.palette import main_screen_commands

    return [command.title for command in main_screen_commands(app.main)]


async def test_thinking_is_off_until_toggled_and_then_folded(tmp_path: Path) -> None:
    from textual.widgets import Markdown

    from lora_tui.ui.widgets.thinking import ThinkingBlock

    app = make_app(["qwen3", "nobel"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "Toggle thinking (now off)" in system_command_titles(app)
        await send(pilot, "Capital of France?")
        assert engine(app).last_settings.thinking is False
        assert not pane(app, "qwen3").query(ThinkingBlock)

        app.main.dialogs.toggle_thinking()
        assert "Toggle thinking (now on)" in system_command_titles(app)
        await send(pilot, "And again?")
        await pilot.pause()
        assert engine(app).last_settings.thinking is True
        (block,) = pane(app, "qwen3").query(ThinkingBlock)
        assert block.collapsed and "answer in one line" in block._text
        answer = pane(app, "qwen3").query(Markdown).last()
        assert "Paris" in answer.source and "think" not in answer.source
        assert not pane(app, "nobel").query(ThinkingBlock)


async def test_no_thinking_command_without_a_thinking_model(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not any("thinking" in title for title in system_command_titles(app))


async def test_every_answer_is_saved_to_the_results_file(tmp_path: Path) -> None:
    from lora_tui.judging.results import read_results

    for name in ("nobel", "executorch"):
        (tmp_path / f"{name}.pte").write_bytes(name.encode())  # stands in for the program
    results = tmp_path / "results" / "session.jsonl"
    app = make_app(["nobel", "executorch"], tmp_path, results_path=results, program_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.main.dialogs.toggle_thinking()  # not a thinking model: the setting is saved as it is
        await send(pilot, "Who won?")
        await pilot.pause()
    saved = read_results(results)
    assert [(r.adapter, r.prompt) for r in saved] == [
        ("nobel", "Who won?"),
        ("executorch", "Who won?"),
    ]
    nobel = saved[0]
    assert "Hopfield" in nobel.answer and nobel.end == "stop"
    assert nobel.ttft_s == 0.21 and nobel.decode_tok_s == 26.4
    assert nobel.settings["temperature"] == 0.0 and nobel.settings["thinking"] is True
    assert nobel.program == str(tmp_path / "nobel.pte")
    assert len(nobel.program_sha256) == 64 and nobel.vote is None


async def test_a_reply_cut_off_by_quitting_leaves_whole_lines(tmp_path: Path) -> None:
    from lora_tui.judging.results import read_results

    (tmp_path / "nobel.pte").write_bytes(b"nobel")
    results = tmp_path / "session.jsonl"
    app = make_app(["nobel"], tmp_path, results_path=results, program_dir=tmp_path, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")  # held mid-stream: the session ends before the reply
    assert read_results(results) == []
