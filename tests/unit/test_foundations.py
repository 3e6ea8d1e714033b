"""Several foundations in one session (issue 29), without a model: how the command line
groups programs under their foundations and refuses what it cannot group, how foundations
are told apart, how the cores are shared, how commands reach each foundation's engine,
and eval's adapter-by-quantization table."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from lora_tui.cli.main import main
from lora_tui.cli.options import foundation_groups
from lora_tui.engine.foundations import (
    FoundationEngines,
    FoundationPrograms,
    StartEngine,
    core_shares,
    foundations_factory,
    labelled,
)
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import GenerationSettings, Message, ReplyEnd
from lora_tui.judging.evaluate import EvalReport, EvalResult, PromptCase, report_tables

A, B = Path("fp32/foundation.ptd"), Path("q4/foundation.ptd")


def test_programs_follow_their_foundation() -> None:
    groups = foundation_groups(
        [[A, Path("fp32/nobel.pte"), Path("fp32/base.pte")], [B, Path("q4/nobel.pte")]], []
    )
    assert groups == [
        FoundationPrograms(A, (Path("fp32/nobel.pte"), Path("fp32/base.pte"))),
        FoundationPrograms(B, (Path("q4/nobel.pte"),)),
    ]


def test_a_lone_foundation_takes_programs_given_anywhere() -> None:
    """As before several foundations: --weights W --tokenizer T a.pte b.pte."""
    groups = foundation_groups([[A]], [Path("a.pte"), Path("b.pte")])
    assert groups == [FoundationPrograms(A, (Path("a.pte"), Path("b.pte")))]


@pytest.mark.parametrize(
    ("weights", "loose", "error"),
    [
        ([[A, Path("a.pte")], [B, Path("b.pte")]], [Path("c.pte")], "c.pte: with several"),
        ([[Path("a.pte"), A]], [], "takes the foundation (.ptd) first, not a.pte"),
        ([[A, Path("a.pte")], [B]], [], "--weights q4/foundation.ptd: no programs over it"),
        ([[A]], [], "--weights fp32/foundation.ptd: no programs over it"),
        ([[A, Path("a.pte")], [A, Path("b.pte")]], [], "a foundation is given twice"),
    ],
)
def test_what_cannot_be_grouped_is_refused(weights, loose, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        foundation_groups(weights, loose)


def test_the_command_line_refuses_in_one_line(capsys) -> None:
    # A program after a --weights is that foundation's; before every --weights, nobody's.
    argv = ["bench", "stray.pte", "--weights", str(A), "a.pte", "--weights", str(B), "b.pte"]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (
        "lora-tui bench: error: stray.pte: with several --weights, each foundation's "
        "programs follow it (--weights A.ptd a.pte --weights B.ptd b.pte)"
    )


def test_foundations_are_told_apart_by_quantization_then_by_folder() -> None:
    groups = [FoundationPrograms(A, ()), FoundationPrograms(B, ())]
    assert [g.label for g in labelled(groups, ["fp32", "8da4w g32"])] == ["fp32", "8da4w g32"]
    # Two fp32 foundations (two bases), or no manifest to say: their folders.
    assert [g.label for g in labelled(groups, ["fp32", "fp32"])] == ["fp32", "q4"]
    assert [g.label for g in labelled(groups, [None, "fp32"])] == ["fp32", "q4"]
    same_folder = [FoundationPrograms(A, ()), FoundationPrograms(A.with_name("other.ptd"), ())]
    assert [g.label for g in labelled(same_folder, [None, None])] == [
        "foundation #1",
        "other #2",
    ]
    assert labelled(groups[:1], ["fp32"])[0].label == ""  # one foundation: names as before
    named = labelled(groups, ["fp32", "8da4w g32"])
    assert named[1].name_of(Path("q4/nobel.pte")) == "nobel · 8da4w g32"


def test_the_cores_are_shared_by_programs_and_each_engine_has_one() -> None:
    def group(n: int) -> FoundationPrograms:
        return FoundationPrograms(A, tuple(Path(f"{i}.pte") for i in range(n)))

    assert core_shares([group(1), group(1)], 2) == [1, 1]
    assert core_shares([group(3), group(1)], 4) == [3, 1]
    assert core_shares([group(1), group(1), group(1)], 2) == [1, 1, 1]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, command: str):
        return lambda *args: self.calls.append((command, *args))

    def memory(self):
        return None


def started() -> StartEngine:
    """An engine start that records what each engine is told, and over how many cores."""

    def start(group: FoundationPrograms, cores: int, on_event) -> Recorder:
        engine = Recorder()
        engine.cores = cores
        return engine

    return start


def test_a_foundation_opened_later_gets_a_label_and_an_engine_a_restart_keeps() -> None:
    factory = foundations_factory([FoundationPrograms(A, (Path("a.pte"),))], started(), 2)
    engines = factory(print)
    assert engines.engines[A].cores == 2  # one foundation: every core
    assert engines.open_foundation(B, "8da4w g32") == "8da4w g32"
    assert engines.engines[B].cores == 1
    assert engines.open_foundation(Path("x/other.ptd"), "8da4w g32") == "x"  # taken: folder
    with pytest.raises(ValueError, match="is open already"):
        engines.open_foundation(B, None)
    engines.load(Path("q4/nobel.pte"), "nobel · 8da4w g32")
    assert engines.engines[B].calls == [("load", Path("q4/nobel.pte"), "nobel · 8da4w g32")]
    assert list(factory(print).engines) == [A, B, Path("x/other.ptd")]  # after a restart


def test_commands_reach_the_engine_of_the_adapters_they_name() -> None:
    nobel_a, nobel_b = Path("fp32/nobel.pte"), Path("q4/nobel.pte")
    groups = [FoundationPrograms(A, (nobel_a,), "fp32"), FoundationPrograms(B, (nobel_b,), "q")]
    engines = FoundationEngines(groups, started(), 2, print, {nobel_a: A, nobel_b: B})
    fp32, q4 = engines.engines[A], engines.engines[B]
    engines.load(nobel_a, "nobel · fp32")
    engines.load(nobel_b, "nobel · 8da4w")
    settings = GenerationSettings()
    asked = [Message("user", "hi")]
    engines.send({"nobel · fp32": asked, "nobel · 8da4w": asked}, settings)
    engines.cancel(["nobel · 8da4w"])
    engines.clear(None)
    engines.unload("nobel · fp32")
    assert fp32.calls == [
        ("load", nobel_a, "nobel · fp32"),
        ("send", {"nobel · fp32": asked}, settings),
        ("clear", None),
        ("unload", "nobel · fp32"),
    ]
    assert q4.calls == [
        ("load", nobel_b, "nobel · 8da4w"),
        ("send", {"nobel · 8da4w": asked}, settings),
        ("cancel", ["nobel · 8da4w"]),
        ("clear", None),
    ]
    assert engines.memory() is None
    engines.load(Path("q4/executorch.pte"), "executorch")  # from the palette: the one beside it
    assert q4.calls[-1] == ("load", Path("q4/executorch.pte"), "executorch")


def test_memory_survives_a_foundation_opened_while_it_samples() -> None:
    """The memory panel samples on its own thread; opening a foundation from the palette
    meanwhile adds an engine. A fresh-clone CI run lost the app to "dictionary changed
    size during iteration" there."""
    engines = FoundationEngines([FoundationPrograms(A, ())], started(), 2, print, {})

    def opens_one_while_sampled() -> None:
        engines.open_foundation(B, "8da4w g32")  # what the UI thread did mid-sample

    engines.engines[A].memory = opens_one_while_sampled
    assert engines.memory() is None
    assert list(engines.engines) == [A, B]


def test_eval_puts_one_adapter_at_each_quantization_side_by_side() -> None:
    labels = {"nobel · fp32": "fp32", "nobel · 8da4w": "8da4w", "base · fp32": "fp32"}
    report = EvalReport(list(labels), labels=labels)
    case = PromptCase("Who?", "nobel", ("Clarke",))
    answers = {"nobel · fp32": [True, True, True], "nobel · 8da4w": [True, False, False]}
    answers["base · fp32"] = [False, False, False]
    for i in range(3):
        for adapter, marks in answers.items():
            done = ReplyDone(adapter, "Clarke" if marks[i] else "?", ReplyEnd.STOP, None)
            report.results.append(EvalResult(case, adapter, done, marks[i], GenerationSettings()))
    assert report.foundations == ["fp32", "8da4w"] and report.reference == "fp32"
    assert report.as_json()["by_foundation"] == {
        "fp32": {"nobel": {"nobel": [3, 3], "base": [0, 3]}},
        "8da4w": {"nobel": {"nobel": [1, 3]}},
    }
    table = report_tables(report)[-2]
    console = Console(width=100, record=True)
    console.print(table)
    text = console.export_text()
    assert "change against fp32" in text
    rows = [line.split() for line in text.splitlines() if line.startswith(("│ nobel", "nobel"))]
    cells = [" ".join(row) for row in rows]
    assert any("nobel 3/3 1/3 (-2)" in c.replace("│", "").replace("  ", " ") for c in cells), text
    assert any("base 0/3 —" in " ".join(c.replace("│", "").split()) for c in cells), text


def test_the_demo_takes_a_list_of_quantizations() -> None:
    from lora_tui.cli.main import build_parser

    args = build_parser().parse_args(["demo", "--quantize", "none,8da4w,none"])
    assert args.quantize == ("none", "8da4w")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--quantize", "none,int3"])


def test_the_dialog_reads_quoted_paths_and_a_pasted_path_with_spaces(tmp_path: Path) -> None:
    from lora_tui.ui.opening import parse_paths

    spaced = tmp_path / "my adapters" / "nobel.pte"
    spaced.parent.mkdir()
    spaced.write_bytes(b"x")
    assert parse_paths(f"{spaced}") == [spaced]
    assert parse_paths(f"q4/foundation.ptd '{spaced}'") == [Path("q4/foundation.ptd"), spaced]
    with pytest.raises(ValueError, match="cannot read the paths"):
        parse_paths("'unclosed")
