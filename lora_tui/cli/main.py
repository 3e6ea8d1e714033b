"""``lora-tui``: one parser, four commands.

- ``lora-tui [compare] --weights foundation.ptd a.pte b.pte``: the app (the default command);
- ``lora-tui [demo]``: the built-in demo (what ``lora-tui`` alone runs);
- ``lora-tui bench``: headless memory and speed per program;
- ``lora-tui eval``: a prompt set on every program, scored.

Options the commands share are declared once, in parent parsers; each command's code is in
``lora_tui/cli/`` and is imported only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

from lora_tui.common.console import ArgumentParser
from lora_tui.common.safe_path import use_safe_path
from lora_tui.demo.build import DEMO_QUANTIZE
from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.format import QUANTIZE_MODES
from lora_tui.judging.measure import DEFAULT_PROMPT  # none of these loads torch

COMMANDS = ("compare", "demo", "bench", "eval")


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
        help="XNNPACK's threads per program process (default: the cores this process may "
        "use, shared among the panes opened together, which answer at once). Fewer threads "
        "fit more panes answering at once; libtorch's OpenMP pool gets one thread unless "
        "OMP_NUM_THREADS says otherwise",
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
        help="more programs over a lone --weights (lora-export's or export_llm's)",
    )
    parent.add_argument(
        "--tokenizer",
        type=Path,
        help="a Hugging Face tokenizer folder or its tokenizer.json, with the chat template "
        "in tokenizer_config.json or chat_template.jinja (default: beside each foundation)",
    )
    return parent


def foundation_groups(weights: list[list[Path]], loose: list[Path]) -> list[FoundationPrograms]:
    """``--weights`` groups as given, each foundation with the programs after it; programs
    given apart belong to a lone foundation. A ``ValueError`` says what is wrong."""
    if len(weights) > 1 and loose:
        raise ValueError(
            f"{loose[0]}: with several --weights, each foundation's programs follow it "
            "(--weights A.ptd a.pte --weights B.ptd b.pte)"
        )
    groups = []
    for index, (foundation, *programs) in enumerate(weights):
        if foundation.suffix == ".pte":
            raise ValueError(f"--weights takes the foundation (.ptd) first, not {foundation}")
        programs += loose if index == 0 else []
        if not programs:
            raise ValueError(f"--weights {foundation}: no programs over it")
        groups.append(FoundationPrograms(foundation, tuple(programs)))
    given = [g.weights.resolve() for g in groups]
    if len(set(given)) < len(given):
        raise ValueError("a foundation is given twice: list its programs after one --weights")
    return groups


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


def _headless_options() -> argparse.ArgumentParser:
    """bench's and eval's: how long each answer may be, and the report's form."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--max-new-tokens", type=_positive, default=64)
    parent.add_argument("--json", action="store_true", help="print one JSON object")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="lora-tui",
        description="Compare LoRA adapter programs that share one foundation weight file, "
        "side by side. 'lora-tui --weights W a.pte b.pte' opens them (the compare command); "
        "'lora-tui' alone opens the built-in demo.",
    )
    parser.add_argument("--version", action="version", version=f"lora-tui {version('lora-tui')}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    runtime, programs, results = _runtime_options(), _program_options(), _results_option()
    headless = _headless_options()
    commands.add_parser(
        "compare",
        parents=[programs, results, runtime],
        help="the app: programs side by side (the default command)",
        description="Open the programs side by side, each streaming its answer.",
    )
    demo = commands.add_parser(
        "demo",
        parents=[results, runtime],
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
    bench = commands.add_parser(
        "bench",
        parents=[programs, runtime, headless],
        help="memory and speed per program, headless",
        description="Load each program in turn, run one prompt on each, and print memory and "
        "speed per adapter.",
    )
    bench.add_argument("--prompt", default=DEFAULT_PROMPT)
    _add_eval(commands, [programs, runtime, headless])
    return parser


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


def _with_command(argv: list[str]) -> list[str]:
    """``lora-tui`` alone is the demo; arguments without a command are ``compare``'s."""
    if not argv:
        return ["demo"]
    if argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version"):
        return argv
    return ["compare", *argv]


def main(argv: list[str] | None = None) -> int:
    use_safe_path()  # before any child starts: none imports from the working folder
    parser = build_parser()
    args = parser.parse_args(_with_command(sys.argv[1:] if argv is None else argv))
    if hasattr(args, "weights"):
        try:
            args.foundations = foundation_groups(args.weights, args.programs)
        except ValueError as err:
            parser.exit(2, f"lora-tui {args.command}: error: {err}\n")
    # bench and eval run programs in this process: before anything imports torch.
    from lora_tui.engine.threads import hold_openmp_to_one_thread

    hold_openmp_to_one_thread()
    if args.command == "demo":
        from lora_tui.cli.demo import demo_main

        return demo_main(args)
    if args.command == "bench":
        from lora_tui.cli.bench import bench_main

        return bench_main(args)
    if args.command == "eval":
        from lora_tui.cli.eval import eval_main

        return eval_main(args)
    from lora_tui.cli.compare import compare_main

    return compare_main(args)


if __name__ == "__main__":
    sys.exit(main())
