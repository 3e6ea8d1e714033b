"""``lora-tui``: one parser, four commands.

- ``lora-tui [compare] --weights foundation.ptd a.pte b.pte``: the app (the default command);
- ``lora-tui [demo]``: the built-in demo (what ``lora-tui`` alone runs);
- ``lora-tui bench``: headless memory and speed per program;
- ``lora-tui eval``: a prompt set on every program, scored.

Options the commands share are declared once, in parent parsers. Each command's parser
names what runs it (``set_defaults(run=Command(...))``): its options, typed once from the
parsed arguments (``options.py``), and its module in ``lora_tui/cli/``, imported only when
it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console

from lora_tui.cli.options import BenchOptions, CompareOptions, DemoOptions, EvalOptions
from lora_tui.common.console import ArgumentParser, print_error
from lora_tui.common.safe_path import use_safe_path
from lora_tui.demo.build import DEMO_QUANTIZE
from lora_tui.format import QUANTIZE_MODES
from lora_tui.judging.measure import DEFAULT_PROMPT  # none of these loads torch

DEFAULT_COMMAND = "compare"  # what words that name no command are; no words: the demo
OWN_OPTIONS = ("-h", "--help", "--version")  # the top-level parser's own


@dataclass(frozen=True)
class Command:
    """What a command's parser runs: ``function`` of ``module`` (imported only then: bench
    and eval bring torch) with the command's options, typed from the parsed arguments."""

    options: Any  # a class of options.py, with its from_args
    module: str
    function: str

    def run(self, options: Any) -> int:
        return getattr(importlib.import_module(self.module), self.function)(options)


class CommandLine(ArgumentParser):
    """lora-tui's parser. Its first word names the command; with no word at all it gives
    its defaults, which are the demo's; words that name no command are the default
    command's, and its parser reads them as they are (its errors say "lora-tui compare")."""

    commands: dict[str, argparse.ArgumentParser]

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        if words and words[0] not in self.commands and words[0] not in OWN_OPTIONS:
            return self.commands[DEFAULT_COMMAND].parse_known_args(words, namespace)
        return super().parse_known_args(words, namespace)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _quantizations(text: str) -> tuple[str, ...]:
    """``none,8da4w``: the demo's quantizations, each once, in order."""
    modes = tuple(dict.fromkeys(mode.strip() for mode in text.split(",") if mode.strip()))
    unknown = [mode for mode in modes if mode not in QUANTIZE_MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(
            f"{', '.join(unknown) or repr(text)}: not one of {', '.join(QUANTIZE_MODES)}"
        )
    return modes


def _runtime_options() -> argparse.ArgumentParser:
    """How programs run: every command that runs them takes these."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--log", type=Path, help="write the runtime's own log lines to this file")
    parent.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        help="XNNPACK's threads per program process, fixed (default: the cores this process "
        "may use, all of them for a pane answering alone and shared among the panes "
        "answering at once). Fewer threads fit more panes answering at once; libtorch's "
        "OpenMP pool gets one thread unless OMP_NUM_THREADS says otherwise",
    )
    parent.add_argument(
        "--no-share",
        action="store_true",
        help="leave XNNPACK's weight cache off, to compare memory",
    )
    return parent


def _program_options() -> argparse.ArgumentParser:
    """Which programs: each foundation followed by the programs over it, and the tokenizer."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--weights",
        type=Path,
        nargs="+",
        action="append",
        required=True,
        metavar=("FOUNDATION.ptd", "PROGRAM.pte"),
        help="a foundation weight file (.ptd) and the programs over it, which share it; "
        "repeat it to open several foundations side by side (--weights fp32/foundation.ptd "
        "fp32/nobel.pte --weights q4/foundation.ptd q4/nobel.pte)",
    )
    parent.add_argument(
        "programs",
        nargs="*",
        type=Path,
        metavar="PROGRAM.pte",
        help="more programs over a lone --weights (lora-export's or export_llm's); "
        "PROGRAM.pte@SCALE opens a lora-export adapter at another LoRA strength as a pane "
        "of its own (nobel.pte@0.5: 'nobel ×0.5'; 0 is the base, 1 the adapter), here or "
        "after --weights",
    )
    parent.add_argument(
        "--tokenizer",
        type=Path,
        help="a Hugging Face tokenizer folder or its tokenizer.json, with the chat template "
        "in tokenizer_config.json or chat_template.jinja (default: beside each foundation)",
    )
    return parent


def _results_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--results",
        type=Path,
        metavar="RESULTS.jsonl",
        help="append every answer here, one JSON line each "
        "(default: a new file in ~/.local/share/lora-tui/results)",
    )
    return parent


def _base_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--base",
        metavar="PROGRAM",
        help="score every other pane's reply against this program (its pane's name, file or "
        "path) and show where each departs from it (F6); default: the program the manifest "
        "calls the base",
    )
    return parent


def _headless_options() -> argparse.ArgumentParser:
    """bench's and eval's: how long each answer may be, and the report's form."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--max-new-tokens", type=_positive, default=64)
    parent.add_argument("--json", action="store_true", help="print one JSON object")
    return parent


def build_parser() -> CommandLine:
    parser = CommandLine(
        prog="lora-tui",
        description="Compare LoRA adapter programs that share one foundation weight file, "
        "side by side. 'lora-tui --weights W a.pte b.pte' opens them (the compare command); "
        "'lora-tui' alone opens the built-in demo.",
    )
    parser.add_argument("--version", action="version", version=f"lora-tui {version('lora-tui')}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    runtime, programs, results = _runtime_options(), _program_options(), _results_option()
    headless, base = _headless_options(), _base_option()
    compare = commands.add_parser(
        "compare",
        parents=[programs, results, base, runtime],
        help="the app: programs side by side (the default command)",
        description="Open the programs side by side, each streaming its answer.",
    )
    _add_watch(compare)
    compare.set_defaults(
        command="compare",  # also when its words came without its name
        run=Command(CompareOptions, "lora_tui.cli.compare", "compare_main"),
    )
    demo = commands.add_parser(
        "demo",
        parents=[results, base, runtime],
        help="build (first run only) and open the built-in demo",
        description="Build (first run only) and open the demo: SmolLM2-135M-Instruct with "
        "its 'nobel' and 'executorch' adapters.",
    )
    demo.add_argument(
        "--quantize",
        type=_quantizations,
        default=(DEMO_QUANTIZE,),
        metavar="MODE[,MODE...]",
        help="the foundation's weights: none (fp32), 8da4w or 8da8w (int4 or int8 weights, "
        "int8 dynamic activations), each built into its own cache folder; several, as "
        "none,8da4w, open each adapter once per quantization side by side "
        f"(default: {DEMO_QUANTIZE})",
    )
    demo.set_defaults(run=Command(DemoOptions, "lora_tui.cli.demo", "demo_main"))
    bench = commands.add_parser(
        "bench",
        parents=[programs, runtime, headless],
        help="memory and speed per program, headless",
        description="Load each program in turn, run one prompt on each, and print memory and "
        "speed per adapter.",
    )
    bench.add_argument("--prompt", default=DEFAULT_PROMPT)
    bench.set_defaults(run=Command(BenchOptions, "lora_tui.cli.bench", "bench_main"))
    _add_eval(commands, [programs, runtime, headless])
    parser.commands = dict(commands.choices)
    # No command at all is the demo: its defaults are the parser's.
    parser.set_defaults(command="demo", **vars(demo.parse_args([])))
    return parser


def _add_watch(compare: argparse.ArgumentParser) -> None:
    compare.add_argument(
        "--watch",
        type=Path,
        metavar="RUN_DIR",
        help="a training run's folder of checkpoint-N/ PEFT adapters: each exported into "
        "the folder of --weights as training writes it (once its files are complete) and "
        "opened as a pane, those exported already at start",
    )
    compare.add_argument(
        "--watch-base",
        type=Path,
        metavar="DIR",
        help="the base --watch exports from (default: the one the --weights folder's "
        "manifest names)",
    )


def _add_eval(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "eval",
        parents=parents,
        help="a prompt set on every program, scored",
        description="Run every prompt of a prompt set on every program, greedy, and score the "
        "answers by their keywords and regexes.",
    )
    evaluate.add_argument(
        "--prompts",
        action="append",
        required=True,
        type=Path,
        metavar="PROMPTS.jsonl",
        help='JSON Lines: {"prompt": ..., "keywords": [...], "regex": ..., "group": ...} '
        "(repeatable)",
    )
    evaluate.add_argument(
        "--out", type=Path, metavar="RESULTS.jsonl", help="append every answer here"
    )
    evaluate.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the sweep on a Ray cluster: a local one started for it, or the one at "
        "ADDRESS ('auto', 'host:port'); needs pip install 'lora-tui[ray]'",
    )
    evaluate.add_argument(
        "--resume",
        action="store_true",
        help="skip every answer --out already has (same prompt, program SHA-256 and "
        "settings), so a stopped sweep goes on where it was",
    )
    evaluate.set_defaults(run=Command(EvalOptions, "lora_tui.cli.eval", "eval_main"))


def main(argv: list[str] | None = None) -> int:
    use_safe_path()  # before any child starts: none imports from the working folder
    args = build_parser().parse_args(argv)
    command: Command = args.run
    try:
        options = command.options.from_args(args)
    except ValueError as err:  # what argparse cannot check, as argparse would exit
        print_error(Console(stderr=True, highlight=False), f"lora-tui {args.command}", err)
        raise SystemExit(2) from None
    # bench and eval run programs in this process: before anything imports torch.
    from lora_tui.engine.threads import hold_openmp_to_one_thread

    hold_openmp_to_one_thread()
    return command.run(options)


if __name__ == "__main__":
    sys.exit(main())
