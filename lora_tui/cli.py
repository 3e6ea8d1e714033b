"""``lora-tui`` command line. The app and the engine arrive in later issues."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-tui",
        description="Compare LoRA adapter programs that share one foundation weight file.",
    )
    parser.add_argument("--weights", help="foundation.ptd written by lora-export")
    parser.add_argument("programs", nargs="*", help="adapter .pte files")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("lora-tui: the comparison app is not built yet; see lora-export --help", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
