"""Bad input and bad luck in the app, against the fake engine: nothing is lost, nothing
hangs, and an engine that dies is replaced."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from textual.widgets import Input

from lora_tui.engine import EngineFailed, ReplyDone, ReplyEnd
from tests.support.pilot import SIZE, engine, make_app, notifications, pane, send


async def test_enter_before_the_adapters_are_ready_keeps_the_prompt(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path, slow_loads=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        assert not [c for c in engine(app).calls if c[0] == "send"]
        # Each pane keeps it (tests/app/test_kept_prompts.py) and answers once loaded.
        notes = [str(n.render()) for p in app.main.panes.values() for n in p.query(".notice")]
        assert len(notes) == 2 and all("waiting for this adapter to load" in n for n in notes)
        engine(app).finish_loads()
        for _ in range(2):
            await pilot.pause()
        assert ("send", ("nobel",), "Who won?") in engine(app).calls
        assert ("send", ("executorch",), "Who won?") in engine(app).calls


async def test_a_dead_engine_is_replaced_and_conversations_are_kept(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")  # a whole turn in each pane
        first = engine(app)
        first.hold = True
        await send(pilot, "And in 2025?")  # replies half-way when the engine dies
        assert pane(app, "nobel").state == "generating"
        first.on_event(EngineFailed("engine process exited (-11)"))
        await pilot.pause()
        assert len(app.engines) == 2 and ("close",) in first.calls
        nobel = pane(app, "nobel")
        assert nobel.state == "ready"  # loaded into the new engine, not left generating
        assert [t.role for t in nobel.conversation.turns] == [
            "user",
            "assistant",
            "user",
            "assistant",
        ]
        assert nobel.conversation.turns[-1].note.startswith("error: engine process exited")
        assert nobel.conversation.turns[-1].text.startswith(
            "The 2024"
        )  # what had streamed in is kept
        loads = [c for c in app.engines[1].calls if c[0] == "load"]
        assert [c[2] for c in loads] == ["nobel", "executorch"]
        assert any("started a new one" in n for n in notifications(app))
        app.engines[1].hold = False
        await send(pilot, "Still there?")
        assert nobel.conversation.last_reply.startswith("The 2024")
        # The new engine gets the conversation with the next prompt; the exchange the dead
        # engine broke off is shown but not answered from.
        sent = app.engines[1].conversations["nobel"]
        assert [(m.role, m.content[:8]) for m in sent] == [
            ("user", "Who won?"),
            ("assistant", "The 2024"),
            ("user", "Still th"),
        ]


async def test_an_engine_that_keeps_dying_is_not_restarted_forever(tmp_path: Path) -> None:
    app = make_app(["nobel"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for _ in range(4):
            app.engine.on_event(EngineFailed("boom"))
            await pilot.pause()
        assert app.engine is None and len(app.engines) == 4
        assert any("not started again" in n for n in notifications(app))
        await send(pilot, "Anyone?")  # says so instead of doing nothing
        assert any("no engine" in n for n in notifications(app))
        assert app.query_one("#prompt", Input).value == "Anyone?"


async def test_saving_into_a_missing_folder_says_why_and_loses_nothing(tmp_path: Path) -> None:
    app = make_app(["nobel"], tmp_path / "gone")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert any("could not save" in n and "No such file" in n for n in notifications(app))
        assert len(pane(app, "nobel").conversation.turns) == 2


async def test_saving_onto_a_full_disk_leaves_no_half_file(tmp_path: Path, monkeypatch) -> None:
    import lora_tui.common.files as files  # write_text_atomic writes transcripts and exports

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle) -> None:
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

        def write(self, text: str) -> None:
            self.handle.write(text[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fdopen", lambda *a, **k: FullDisk(real_fdopen(*a, **k)))
    app = make_app(["nobel"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert any("No space left" in n for n in notifications(app))
        assert list(tmp_path.iterdir()) == []  # no transcript, no partial file
        assert len(pane(app, "nobel").conversation.turns) == 2


async def test_a_100_kb_paste_is_sent_whole_and_the_app_stays_usable(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        huge = ("lorem ipsum dolor sit amet " * 4000)[:100_000]
        await send(pilot, huge)
        sent = [c for c in engine(app).calls if c[0] == "send"]
        assert len(sent[-1][2]) == len(huge.strip())
        await pilot.press("tab")
        assert app.main.selected == 1
        assert pane(app, "nobel").conversation.last_reply


async def test_resizing_to_40x12_while_streaming(tmp_path: Path) -> None:
    app = make_app(["nobel", "executorch", "base"], tmp_path, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        # One column, and the memory panel gives its width to the conversations.
        assert app.main.query_one("#panes").styles.grid_size_columns == 1
        assert not app.main.memory_panel.display
        await pilot.press("escape")
        await pilot.pause()
        await pilot.resize_terminal(*SIZE)
        await pilot.pause()
        assert all(p.state == "cancelled" for p in app.main.panes.values())
        assert app.main.query_one("#panes").styles.grid_size_columns == 2


async def test_what_the_context_left_out_is_not_sent_again(tmp_path: Path) -> None:
    app = make_app(["nobel"], tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await send(pilot, "Who won?")
        fake = engine(app)
        fake.hold = True
        await send(pilot, "And in 2025?")
        fake.on_event(ReplyDone("nobel", "Nobody yet.", ReplyEnd.STOP, None, None, forgotten=2))
        fake.running.clear()
        fake.hold = False
        await pilot.pause()
        await send(pilot, "Thanks")
        nobel = pane(app, "nobel")
        assert [t.text for t in nobel.conversation.turns if t.role == "user"] == [
            "Who won?",
            "And in 2025?",
            "Thanks",
        ]  # the pane still shows every turn, and says what happened
        assert any(t.role == "notice" and "left out" in t.text for t in nobel.conversation.turns)
        assert [m.content for m in fake.conversations["nobel"]][::2] == ["And in 2025?", "Thanks"]

        # Full again at the next turn: the pane counts it, and does not say it again.
        fake.hold = True
        await send(pilot, "Bye")
        fake.on_event(ReplyDone("nobel", "Bye!", ReplyEnd.STOP, None, None, forgotten=2))
        fake.running.clear()
        await pilot.pause()
        assert sum(t.role == "notice" for t in nobel.conversation.turns) == 1
        assert "4 left out" in str(nobel.query_one(".status").render())
