"""Soak: many turns in a row on one adapter; RSS may grow only as far as the KV cache allows.

    .venv/bin/python -m benchmarks.soak --weights OUT/foundation.ptd --program OUT/NAME.pte \\
        [--turns 200] [--max-new-tokens 24]

The KV cache is allocated when the program loads but its pages become resident as the
conversation fills it, so RSS may rise by up to its size; anything beyond that is a leak.
Growth is measured from the end of a short warm-up (the first turns fill Python's and the
allocator's caches once). Oldest turns are dropped when the context fills, so the
conversation runs indefinitely.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lora_tui.common.native_output import native_output_to
from lora_tui.engine import GenerationSettings, ModelHost, Notice, ReplyDone
from lora_tui.engine.conversation import Conversation
from lora_tui.engine.memory import sample

PYTHON_SLACK_MIB = 1.0  # the interpreter's heap wanders by a fraction of a MiB
QUESTIONS = [
    "What is a LoRA adapter?",
    "Why is it small?",
    "Name a use for one.",
    "Summarise what we said.",
    "Tell me something new.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--program", type=Path, required=True)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()

    with native_output_to(Path("/dev/null")):
        host = ModelHost(args.weights)
        info = host.load(args.program)
        host.end_checks()  # the pre-flight child is not needed any more
    after_load = sample(detailed=False).rss_mib
    warm_up_turns = 10
    after_warm_up = after_load
    settings = GenerationSettings(temperature=0.7, top_p=0.9, max_new_tokens=args.max_new_tokens)
    drops = errors = 0
    conversation = Conversation()  # the script keeps it; the engine keeps none
    started = time.perf_counter()
    for turn in range(args.turns):
        settings = GenerationSettings(
            temperature=0.7, top_p=0.9, max_new_tokens=args.max_new_tokens, seed=turn
        )
        messages = conversation.ask(QUESTIONS[turn % len(QUESTIONS)])
        with native_output_to(Path("/dev/null")):
            events = list(host.generate(info.name, messages, settings))
        drops += sum(isinstance(e, Notice) for e in events)
        done = events[-1]
        assert isinstance(done, ReplyDone)
        errors += done.error is not None
        conversation.answered(done)
        if turn + 1 == warm_up_turns:
            after_warm_up = sample(detailed=False).rss_mib
        if (turn + 1) % 25 == 0:
            rss = sample(detailed=False).rss_mib
            print(
                f"turn {turn + 1:4d}: RSS {rss:7.1f} MiB (+{rss - after_load:5.1f} since load), "
                f"{drops} context drops, {errors} errors, {time.perf_counter() - started:6.0f} s"
            )
    final = sample(detailed=False).rss_mib
    growth = final - after_warm_up
    allowed = info.breakdown.kv_cache_mib
    verdict = "within" if growth <= allowed + PYTHON_SLACK_MIB else "BEYOND"
    print(
        f"RSS after load {after_load:.1f} MiB, after {warm_up_turns} warm-up turns "
        f"{after_warm_up:.1f} MiB, after {args.turns} turns {final:.1f} MiB"
    )
    print(
        f"growth after warm-up: {growth:.1f} MiB; the KV cache is {allowed:.1f} MiB "
        f"(+{PYTHON_SLACK_MIB:.0f} MiB for Python's own heap): {verdict} the bound"
    )


if __name__ == "__main__":
    main()
