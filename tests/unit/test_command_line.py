"""The command line (issue 43): the parser names what runs each command, with its options
typed once; ``lora-tui`` alone is the demo and words that name no command are compare's,
with no argv rewritten; what argparse cannot check is one red-prefixed line and exit 2."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from lora_tui.cli.main import build_parser, main
from lora_tui.cli.options import (
    CompareOptions,
    DemoOptions,
    EvalOptions,
    Programs,
    Runtime,
)
from lora_tui.demo.build import DEMO_QUANTIZE
from lora_tui.engine.foundations import FoundationPrograms


@pytest.fixture
def ran(monkeypatch) -> list[tuple[str, Any]]:
    """Every command's code replaced by one that notes what it was given."""
    calls: list[tuple[str, Any]] = []
    for command in ("compare", "demo", "bench", "eval"):
        module = types.ModuleType(f"lora_tui.cli.{command}")
        setattr(module, f"{command}_main", lambda options, c=command: calls.append((c, options)))
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr("lora_tui.engine.threads.hold_openmp_to_one_thread", lambda: None)
    return calls


def test_no_words_run_the_demo_with_its_defaults(ran) -> None:
    main([])
    assert ran == [("demo", DemoOptions((DEMO_QUANTIZE,), Runtime(), None))]
    main(["demo"])
    assert ran[1] == ran[0]


def test_words_that_name_no_command_are_compares(ran) -> None:
    main(["--weights", "w.ptd", "--log", "l.txt", "a.pte", "b.pte", "--no-share"])
    group = FoundationPrograms(Path("w.ptd"), (Path("a.pte"), Path("b.pte")))
    runtime = Runtime(log=Path("l.txt"), share=False)
    assert ran == [("compare", CompareOptions(Programs((group,)), runtime, None))]
    assert build_parser().parse_args(["--weights", "w.ptd", "a.pte"]).command == "compare"


def test_eval_options_are_typed_once(ran) -> None:
    main(["eval", "--weights", "w.ptd", "a.pte", "--prompts", "p.jsonl", "--ray", "h:6379"])
    main(["eval", "--weights", "w.ptd", "a.pte", "--prompts", "p.jsonl", "--ray", "--json"])
    (_, remote), (_, local) = ran
    assert isinstance(remote, EvalOptions) and remote.ray and remote.ray_address == "h:6379"
    assert local.ray and local.ray_address is None and local.json and local.max_new_tokens == 64
    assert remote.prompts == (Path("p.jsonl"),) and remote.out is None and not remote.resume


def test_what_argparse_cannot_check_is_one_line_and_exit_2(ran, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["eval", "--weights", "w.ptd", "a.pte", "--prompts", "p.jsonl", "--resume"])
    assert stop.value.code == 2 and ran == []
    assert capsys.readouterr().err == "lora-tui eval: error: --resume needs --out RESULTS.jsonl\n"


def test_base_names_the_program_others_are_scored_against(ran) -> None:
    main(["--weights", "w.ptd", "base.pte", "nobel.pte", "--base", "base.pte"])
    main(["demo", "--base", "base"])
    (_, compare), (_, demo) = ran
    assert compare.base == "base.pte" and demo.base == "base"


def test_a_base_that_names_no_program_opened_is_one_line() -> None:
    from lora_tui.cli.compare import check_base
    from lora_tui.format import ArtifactError

    group = FoundationPrograms(Path("w/foundation.ptd"), (Path("w/base.pte"), Path("w/nobel.pte")))
    for named in ("base", "base.pte", "w/base.pte"):
        check_base(named, [group])
    with pytest.raises(
        ArtifactError, match=r"^--base mixed: not a program opened here \(base, nobel\)$"
    ):
        check_base("mixed", [group])
