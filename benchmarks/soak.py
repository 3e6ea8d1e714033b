"""Soak: many turns in a row on one adapter; RSS may grow only as far as the KV cache allows.

    .venv/bin/python -m benchmarks.soak --weights OUT/foundation.ptd --program OUT/NAME.pte \\
        [--turns 200] [--max-new-tokens 24]

The KV cache is allocated when the program loads but its pages become resident as the
conversation fills it, so RSS may rise by up to its size; anything beyond that is a leak.
Growth is measured from the end of a short warm-up (the first turns fill Python's and the
allocator's caches once). The script keeps the conversation and leaves out the oldest
turns the engine says no longer fit, so it runs indefinitely. The figures go to
``benchmarks/results/soak.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks import markdown
from benchmarks.record import write_results
from lora_tui.common.native_output import native_output_to
from lora_tui.engine import GenerationSettings, ModelHost, ReplyDone
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


WARM_UP_TURNS = 10


def soak(host: ModelHost, name: str, turns: int, max_new_tokens: int) -> dict[str, float]:
    """Run the turns; RSS after load, after the warm-up and at the end, drops and errors."""
    after_load = after_warm_up = sample(detailed=False).rss_mib
    drops = errors = 0
    conversation = Conversation()  # the script keeps it; the engine keeps none
    started = time.perf_counter()
    for turn in range(turns):
        settings = GenerationSettings(
            temperature=0.7, top_p=0.9, max_new_tokens=max_new_tokens, seed=turn
        )
        messages = conversation.ask(QUESTIONS[turn % len(QUESTIONS)])
        with native_output_to(Path("/dev/null")):
            events = list(host.generate(name, messages, settings))
        done = events[-1]
        assert isinstance(done, ReplyDone)
        drops += done.forgotten > 0
        errors += done.error is not None
        conversation.answered(done)
        if turn + 1 == WARM_UP_TURNS:
            after_warm_up = sample(detailed=False).rss_mib
        if (turn + 1) % 25 == 0:
            rss = sample(detailed=False).rss_mib
            print(
                f"turn {turn + 1:4d}: RSS {rss:7.1f} MiB (+{rss - after_load:5.1f} since load), "
                f"{drops} context drops, {errors} errors, {time.perf_counter() - started:6.0f} s"
            )
    return {
        "rss_after_load_mib": after_load,
        "rss_after_warm_up_mib": after_warm_up,
        "rss_final_mib": sample(detailed=False).rss_mib,
        "turns_with_context_notices": drops,
        "errors": errors,
        "seconds": time.perf_counter() - started,
    }


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
    figures = soak(host, info.name, args.turns, args.max_new_tokens)
    growth = figures["rss_final_mib"] - figures["rss_after_warm_up_mib"]
    allowed = info.breakdown.kv_cache_mib
    verdict = "within" if growth <= allowed + PYTHON_SLACK_MIB else "BEYOND"
    print(
        f"RSS after load {figures['rss_after_load_mib']:.1f} MiB, after {WARM_UP_TURNS} "
        f"warm-up turns {figures['rss_after_warm_up_mib']:.1f} MiB, after {args.turns} turns "
        f"{figures['rss_final_mib']:.1f} MiB"
    )
    print(
        f"growth after warm-up: {growth:.1f} MiB; the KV cache is {allowed:.1f} MiB "
        f"(+{PYTHON_SLACK_MIB:.0f} MiB for Python's own heap): {verdict} the bound"
    )
    report = {
        "program": str(args.program),
        "turns": args.turns,
        "max_new_tokens": args.max_new_tokens,
        "warm_up_turns": WARM_UP_TURNS,
        **{key: round(value, 1) for key, value in figures.items()},
        "growth_after_warm_up_mib": round(growth, 1),
        "kv_cache_mib": round(allowed, 1),
    }
    write_results("soak", report)


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def soak_table(report: dict) -> list[str]:
    warm = report["warm_up_turns"]
    rows = [
        ("RSS after load", f"{report['rss_after_load_mib']} MiB"),
        (f"after {warm} warm-up turns", f"{report['rss_after_warm_up_mib']} MiB"),
        (f"after {report['turns']} turns", f"{report['rss_final_mib']} MiB"),
        ("**growth after the warm-up**", f"**{report['growth_after_warm_up_mib']} MiB**"),
        ("the KV cache (the bound)", f"{report['kv_cache_mib']} MiB"),
        ("turns that left old messages out", report["turns_with_context_notices"]),
        ("errors", report["errors"]),
    ]
    lines = markdown.head(["", Path(report["program"]).name])
    return lines + [markdown.row(list(row)) for row in rows]


if __name__ == "__main__":
    main()
