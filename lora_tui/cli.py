"""``lora-tui``: the comparison app, ``lora-tui bench`` for headless measurements and
``lora-tui eval`` for scoring a prompt set."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

WEIGHTS_HELP = "the foundation weight file (.ptd) the programs share"


def app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-tui",
        description="Compare LoRA adapter programs that share one foundation weight file, "
        "side by side. With no arguments: the built-in demo ('lora-tui demo --help'). "
        "Also: 'lora-tui bench --help', 'lora-tui eval --help'.",
    )
    parser.add_argument("--weights", type=Path, required=True, help=WEIGHTS_HELP)
    parser.add_argument(
        "programs",
        nargs="+",
        type=Path,
        metavar="PROGRAM.pte",
        help="ExecuTorch LLM programs over that foundation (lora-export's or export_llm's)",
    )
    _results(parser)
    _common(parser)
    return parser


def bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-tui bench",
        description="Load each program in turn, run one prompt on each, and print memory and "
        "speed per adapter.",
    )
    parser.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    parser.add_argument("programs", nargs="+", metavar="PROGRAM.pte")
    from lora_tui.bench import DEFAULT_PROMPT

    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    _common(parser)
    return parser


def eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-tui eval",
        description="Run every prompt of a prompt set on every program, greedy, and score the "
        "answers by their keywords and regexes.",
    )
    parser.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    parser.add_argument("programs", nargs="+", metavar="PROGRAM.pte")
    parser.add_argument(
        "--prompts",
        action="append",
        required=True,
        metavar="PROMPTS.jsonl",
        help='JSON Lines: {"prompt": ..., "keywords": [...], "regex": ..., "group": ...} '
        "(repeatable)",
    )
    parser.add_argument("--out", metavar="RESULTS.jsonl", help="append every answer here")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    _common(parser)
    return parser


def demo_parser() -> argparse.ArgumentParser:
    from lora_tui.demo import DEMO_QUANTIZE  # the demo's path imports it anyway
    from lora_tui.format import QUANTIZE_MODES

    parser = argparse.ArgumentParser(
        prog="lora-tui demo",
        description="Build (first run only) and open the demo: SmolLM2-135M-Instruct with "
        "its 'nobel' and 'executorch' adapters.",
    )
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default=DEMO_QUANTIZE,
        help="the foundation's weights: none (fp32) or 8da4w (int4 weights, int8 dynamic "
        f"activations), each built into its own cache folder (default: {DEMO_QUANTIZE})",
    )
    _results(parser)
    _common(parser, tokenizer=False)
    return parser


def _results(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        metavar="RESULTS.jsonl",
        help="append every answer here, one JSON line each "
        "(default: a new file in ~/.local/share/lora-tui/results)",
    )


def _common(parser: argparse.ArgumentParser, tokenizer: bool = True) -> None:
    if tokenizer:
        parser.add_argument(
            "--tokenizer",
            help="a Hugging Face tokenizer folder or its tokenizer.json, with the chat template "
            "in tokenizer_config.json or chat_template.jinja (default: beside the weights)",
        )
    parser.add_argument("--log", help="write the runtime's own log lines to this file")
    parser.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        help="XNNPACK's threads per program process (default: the cores this process may "
        "use, shared among the panes opened together, which answer at once). Fewer threads "
        "fit more panes answering at once; libtorch's OpenMP pool gets one thread unless "
        "OMP_NUM_THREADS says otherwise",
    )
    parser.add_argument(
        "--no-share",
        action="store_true",
        help="leave XNNPACK's weight cache off, to compare memory",
    )
    parser.add_argument("--version", action="version", version=f"lora-tui {version('lora-tui')}")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # bench and eval run programs in this process: before anything imports torch.
    from lora_tui.engine.threads import hold_openmp_to_one_thread

    hold_openmp_to_one_thread()
    if not argv or argv[0] == "demo":
        from lora_tui.demo_cli import demo_main

        return demo_main(demo_parser().parse_args(argv[1:]))
    if argv[:1] == ["bench"]:
        from lora_tui.bench import bench_main

        return bench_main(bench_parser().parse_args(argv[1:]))
    if argv[:1] == ["eval"]:
        from lora_tui.evaluate import eval_main

        return eval_main(eval_parser().parse_args(argv[1:]))
    args = app_parser().parse_args(argv)
    from lora_tui.ui.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
