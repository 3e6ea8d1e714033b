"""Text from files on the terminal (issue 42): shown as written, never as markup, with no
control character. The app's side is tests/app/test_literal_text.py; the commands' over real
programs, tests/integration/test_literal_text.py."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from lora_tui.cli.main import build_parser
from lora_tui.common.console import RichEvents, progress_display, report_failures
from lora_tui.common.literal import literal, printable
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import EngineError, GenerationSettings, ReplyEnd
from lora_tui.judging.evaluate import EvalReport, EvalResult, PromptCase, report_tables
from tests.support.checks import assert_no_controls

MARKUP = ["support[lr=1e-4]", "[/]", "[/INST]", "[bold]x[/bold]", "[link=file:///etc]y[/link]"]


def recording_console(width: int = 200) -> Console:
    return Console(file=io.StringIO(), width=width, record=True, highlight=False)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\x1b[31mred\x1b[0m", "ared"),  # CSI, whole
        ("a\x1b[?1049hb", "ab"),  # the alternate screen
        ("\x1b]0;owned\x07title", "title"),  # OSC ended by BEL
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC ended by ST
        ("\x1bPq#0;2\x1b\\sixel", "sixel"),  # DCS
        ("a\x1bcb\x1b7c", "abc"),  # two-byte: reset, save cursor
        ("bell\x07 back\x08 cr\r del\x7f c1\x9b2J nul\x00", "bell back cr del c12J nul"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),  # kept
        ("lone \x1b", "lone "),
        ("Ünïcödé ✓ 漢字 🙂", "Ünïcödé ✓ 漢字 🙂"),
    ],
)
def test_printable_drops_escape_sequences_and_control_characters(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_literal_text_prints_as_written() -> None:
    console = recording_console()
    for text in MARKUP:
        console.print(literal(text))
    assert console.export_text().splitlines() == MARKUP
    assert literal("x", "red").style == "red"


def test_a_failure_quoting_markup_and_escapes_is_one_literal_line(tmp_path: Path) -> None:
    """Was: rich.errors.MarkupError, the failure's own traceback lost behind it."""
    console = recording_console()

    def fails() -> None:
        raise EngineError("pack/[/]/a.pte: not a program [/INST]\x1b[2J\nsecond line")

    code, _ = report_failures(fails, console, "lora-tui", tmp_path / "log", "stopped")
    assert code == 1
    assert console.export_text() == (
        "lora-tui: error: pack/[/]/a.pte: not a program [/INST] second line\n"
    )

    def crashes() -> None:
        raise ValueError("[bold]boom[/]")

    console = recording_console()
    code, _ = report_failures(crashes, console, "lora-tui", tmp_path / "log", "stopped")
    assert code == 1
    assert console.export_text().startswith("lora-tui: internal error: ValueError: [bold]boom[/]")


def test_progress_shows_file_names_as_written() -> None:
    """The exporter's phases and details name adapters and files ("fill NAME.pte")."""
    console = recording_console()
    progress = progress_display(console)
    events = RichEvents(progress)
    events.phase("fill [/].pte", 2)
    events.advance("support[lr=1e-4] \x1b[2J")
    console.print(progress.get_renderable())
    shown = console.export_text()
    assert "fill [/].pte" in shown and "support[lr=1e-4] " in shown
    assert_no_controls(shown)


def test_eval_report_shows_prompts_groups_and_names_as_written() -> None:
    """Was: the sweep finished, then printing its report raised MarkupError."""
    settings = GenerationSettings(temperature=0.0, max_new_tokens=8)
    cases = [
        PromptCase("<s>[INST] hi [/INST]", "[/]", ("hi",), fact="f[x]"),
        PromptCase("[bold]loud[/bold] \x1b[31mred", "g[lr=1]", ("no",)),
    ]
    adapters = ["support[lr=1e-4]", "a[/]"]
    report = EvalReport(adapters)
    for case in cases:
        for adapter in adapters:
            done = ReplyDone(adapter, "hi [/INST]", ReplyEnd.STOP, None)
            report.results.append(EvalResult.scored(case, adapter, done, settings))
    console = recording_console(width=240)
    for table in report_tables(report):
        console.print(table)
    shown = console.export_text()
    for text in ("<s>[INST] hi [/INST]", "[bold]loud[/bold] red", "g[lr=1]", "f[x]", *adapters):
        assert text in shown, text
    assert "✓" in shown and "✗" in shown
    assert_no_controls(shown)


def test_argument_errors_print_no_control_characters(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        args = ["--weights", "w.ptd", "--prompts", "p.jsonl", "--bogus\x1b]0;owned\x07"]
        build_parser().parse_args(["eval", *args])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus" in err
    assert_no_controls(err)
