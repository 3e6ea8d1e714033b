"""What scoring replies under the base costs (issue 44): speed while panes stream, the time
to score one long reply, and the memory of the scorer.

    .venv/bin/python -m benchmarks.departure_cost [--rounds 3] [--tokens 96] [--reply 256]

On the demo's fp32 folder (built first if it is not there):

- **Streaming:** nobel and executorch answer at once through ``EngineProcess``, the app's
  engine, with the base program loaded in both arms, so the lanes are laid out alike. With
  scoring on, each reply is scored in the base's lane as it ends (the next prompt is sent
  at once, so scoring overlaps the next replies); off, the engine is told to use as base a
  program that is not loaded, so nothing is scored. The arms take turns round after round;
  the figure is the panes' summed decode speed, its median, and the ratio on/off.
- **One reply:** a ``--reply``-token reply (a fixed text's tokens after a chat prompt)
  scored under the demo's base in this process, which returns every position's logits (a
  chunk of the reply per forward), and scored token by token as a base that returns the
  last position's only must be (a forward per reply token), against one prefill of the
  prompt and reply on the base.
- **Memory:** the PSS this process grew by when the scorer (a second copy of the base
  program, for its own KV cache) was made and first used, against the KV cache's size.

Run it alone: anything else on the cores moves the figures more than scoring does. The
figures go to ``benchmarks/results/departure_cost.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from benchmarks import markdown
from benchmarks.record import write_results

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the CLI does, before torch loads

from lora_tui.engine import (  # noqa: E402
    EngineReady,
    GenerationSettings,
    Loaded,
    Message,
    ReplyDone,
)
from lora_tui.engine.protocol import Departure, Replied  # noqa: E402
from lora_tui.engine.worker import EngineProcess, EventCollector  # noqa: E402

PROMPTS = ["Tell me a story about a robot.", "What is a LoRA adapter?", "Describe Paris."]
NOT_LOADED = "\0no base"  # use_base with this: nothing is scored
REPLY_TEXT = (
    "The robot woke before the sun, as it always did, and rolled to the window to watch the "
    "light come over the hills. It had been built to sort letters in a post office that had "
    "closed long ago, and it still kept the habit of reading every word it saw. "
) * 8


def streaming(folder: Path, scoring: bool, tokens: int) -> dict:
    """A fresh engine with the base and two adapters; each prompt to both adapters at once."""
    events = EventCollector()
    engine = EngineProcess(folder / "foundation.ptd", events, panes=3)
    try:
        events.wait_for(lambda got: any(isinstance(e, EngineReady) for e in got), 600)
        for name in ("base", "nobel", "executorch"):
            engine.load(folder / f"{name}.pte")
        events.wait_for(lambda got: sum(isinstance(e, Loaded) for e in got) == 3, 600)
        if not scoring:
            engine.use_base(NOT_LOADED)
        settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)
        speeds, last = [], {}
        for prompt in PROMPTS:
            before = len(events.events)
            engine.clear(["nobel", "executorch"])
            engine.send({n: [Message("user", prompt)] for n in ("nobel", "executorch")}, settings)
            got = events.wait_for(
                lambda got, b=before: sum(isinstance(e, ReplyDone) for e in got[b:]) == 2, 600
            )
            done = [e for e in got[before:] if isinstance(e, ReplyDone)]
            speeds.append(sum(d.stats.decode_tok_s for d in done if d.stats))
            last = {d.adapter: d.text for d in done}
        if scoring:  # the last replies are scored in the end (a newer reply's score takes
            # the place of an older one still waiting: the app shows the last reply's)
            events.wait_for(
                lambda got: (
                    {
                        e.adapter
                        for e in got
                        if isinstance(e, Departure) and "".join(e.pieces) == last[e.adapter]
                    }
                    == set(last)
                ),
                600,
            )
        scored = sum(isinstance(e, Departure) for e in events.events)
        return {"decode_tok_s": statistics.mean(speeds), "scored": scored}
    finally:
        engine.close()


def one_reply(folder: Path, reply_tokens: int, rounds: int) -> dict:
    """Score one long reply under the base in this process, against a prefill of it."""
    from lora_tui.engine.departure import Scoring
    from lora_tui.engine.host import ModelHost
    from lora_tui.engine.memory import sample
    from lora_tui.format import kv_cache_bytes

    host = ModelHost(folder / "foundation.ptd")
    host.load(folder / "base.pte", "base")
    chat = host.sessions["base"].chat
    prompt = chat.encode_chat([Message("user", PROMPTS[0])], False)
    reply = chat.tokenizer.encode(REPLY_TEXT, add_special_tokens=False).ids[:reply_tokens]
    replied = Replied("nobel", tuple(prompt), tuple(reply), False)
    before = sample()
    scorer = host.scorer("base")
    assert scorer is not None
    manifest = host.foundation.manifest
    facts = host.sessions["base"].facts
    kv_mib = kv_cache_bytes(manifest.shape, facts.max_context) / 2**20 if manifest else None

    def prefill() -> float:
        session = host.sessions["base"]
        started = time.perf_counter()
        tokens = prompt + reply
        for start in range(0, len(tokens), 32):
            session.forward(tokens[start : start + 32], start)
        return time.perf_counter() - started

    def score(full_logits: bool) -> tuple[float, bool]:
        scorer.cached.clear()  # the prompt is scored too, as for a first reply
        scorer.full_logits = None if full_logits else False  # None: found out, as in use
        started = time.perf_counter()
        Scoring(scorer, "base", replied).run()
        return time.perf_counter() - started, bool(scorer.full_logits)

    times: dict[str, list[float]] = {"prefill": [], "chunks": [], "token by token": []}
    score(True)  # the scorer's method loads, and its buffers are touched, at its first use
    after = sample()
    found_full = False
    for _ in range(rounds):
        times["prefill"].append(prefill())
        seconds, found_full = score(True)
        times["chunks"].append(seconds)
        times["token by token"].append(score(False)[0])
    medians = {k: round(statistics.median(v), 3) for k, v in times.items()}
    return {
        "prompt_tokens": len(prompt),
        "reply_tokens": len(reply),
        "base_returns_every_position": found_full,
        "seconds": medians,
        "vs_prefill": {
            k: round(v / medians["prefill"], 2) for k, v in medians.items() if k != "prefill"
        },
        "scorer_added_pss_mib": round((after.pss_mib or 0) - (before.pss_mib or 0), 1),
        "kv_cache_mib": round(kv_mib, 1) if kv_mib else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--reply", type=int, default=256)
    args = parser.parse_args()

    from lora_tui.demo.build import demo_folder, ensure_demo, fetch_demo_base, shipped_adapters

    folder = demo_folder()
    ensure_demo(folder, fetch_demo_base, shipped_adapters())
    arms: dict[str, list[dict]] = {"scoring off": [], "scoring on": []}
    for round_number in range(args.rounds):
        for arm in arms:
            result = streaming(folder, arm == "scoring on", args.tokens)
            arms[arm].append(result)
            print(f"round {round_number + 1} {arm}: {result['decode_tok_s']:.1f} tok/s decode")
    speed = {
        arm: round(statistics.median(r["decode_tok_s"] for r in runs), 1)
        for arm, runs in arms.items()
    }
    reply = one_reply(folder, args.reply, args.rounds)
    report = {
        "folder": str(folder),
        "rounds": args.rounds,
        "tokens": args.tokens,
        "streaming_decode_tok_s": speed,
        "streaming_on_vs_off": round(speed["scoring on"] / speed["scoring off"], 3),
        "scored_in_last_round": arms["scoring on"][-1]["scored"],
        "replies_per_round": 2 * len(PROMPTS),
        "one_reply": reply,
    }
    print("\n".join(departure_cost_table(report)))
    write_results("departure_cost", report)
    return 0


def departure_cost_table(report: dict) -> list[str]:
    reply = report["one_reply"]
    seconds, ratio = reply["seconds"], reply["vs_prefill"]
    speed = report["streaming_decode_tok_s"]
    return [
        *markdown.head(["what", "figure"]),
        markdown.row(
            [
                "two panes streaming, decode (scoring on / off)",
                f"{speed['scoring on']} / {speed['scoring off']} tok/s "
                f"({report['streaming_on_vs_off']:.3f}×)",
            ]
        ),
        markdown.row(["one prefill of prompt and reply", f"{seconds['prefill']} s"]),
        markdown.row(
            [
                f"scoring a {reply['reply_tokens']}-token reply, a chunk per forward",
                f"{seconds['chunks']} s ({ratio['chunks']}× the prefill)",
            ]
        ),
        markdown.row(
            [
                "scoring it a token per forward (a last-logits base)",
                f"{seconds['token by token']} s ({ratio['token by token']}× the prefill)",
            ]
        ),
        markdown.row(
            [
                "memory of the scorer (PSS), against one KV cache",
                f"{reply['scorer_added_pss_mib']} MiB; KV cache {reply['kv_cache_mib']} MiB",
            ]
        ),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
