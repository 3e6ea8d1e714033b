"""Where a reply departs from the base (issue 44), on the tiny fixtures: the base program
lora-export lowers returns every position's logits and answers as before; a reply scored
under the base gives the base's log-probability of each token and its first departure; the
base's own greedy reply is "same as base"; in the engine, the Departure follows the reply."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lora_tui.engine import GenerationSettings, Message, ModelHost, ReplyDone
from lora_tui.engine import host as host_module
from lora_tui.engine.departure import Scoring
from lora_tui.engine.loading import position_input, token_input
from lora_tui.engine.protocol import Departure
from lora_tui.engine.worker import EngineProcess, EventCollector
from tests.support.artifacts import TinyArtifacts

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=24)
PROMPT = [Message("user", "Tell me about the capital of France, please.")]
LOADS_S = 600.0


@pytest.fixture(scope="module")
def host(tiny_artifacts: TinyArtifacts) -> ModelHost:
    host = ModelHost(tiny_artifacts.foundation)
    for name in ("base", "full"):
        host.load(tiny_artifacts.program(name))
    return host


def test_the_base_program_returns_every_positions_logits(
    host: ModelHost, tiny_artifacts: TinyArtifacts
) -> None:
    """lora-export lowers the base with full logits (an adapter's program keeps the last
    row only); its last row is what the reply loop takes, so it answers as before."""
    tokens = [1, 5, 9, 13]
    rows = {}
    for name in ("base", "full"):
        out = host.sessions[name].module.forward([token_input(tokens), position_input(0)])[0]
        rows[name] = out.reshape(-1, out.shape[-1]).shape[0]
    assert rows == {"base": len(tokens), "full": 1}


def test_a_reply_scored_under_the_base(host: ModelHost) -> None:
    host.clear()
    base = host.answer("base", PROMPT, GREEDY)
    full = host.answer("full", PROMPT, GREEDY)
    assert base.text and full.text and base.text != full.text
    # The base's own greedy reply, under the base: it departs nowhere, ends where it ends,
    # and each token was the base's most likely (so no better than log 1 = 0).
    own = host.departure("base", "base")
    assert own is not None and own.same_as_base and own.departs_at is None
    assert "".join(own.pieces) == base.text
    assert all(lp <= 0 for lp in own.logprobs) and own.summary == "same as base"
    # The trained adapter's: its text token by token, and where it first leaves the base.
    departure = host.departure("base", "full")
    assert departure is not None and not departure.same_as_base
    assert "".join(departure.pieces) == full.text
    assert len(departure.logprobs) == len(departure.pieces) == full.stats.new_tokens
    assert departure.departs_at is not None and departure.base_choice
    assert departure.summary.startswith(f"departs from base at token {departure.departs_at + 1}")
    # Tokens before the departure are the base's greedy ones: likelier than the one chosen.
    assert departure.mean_logprob < own.mean_logprob
    assert all(math.isfinite(lp) and lp <= 0 for lp in departure.logprobs)


def test_scoring_in_chunks_gives_what_scoring_token_by_token_gives(host: ModelHost) -> None:
    """A full-logits base scores a reply a chunk at a time; a last-logits program a token at
    a time (found on its first chunk, then run again). Both give the same scores."""
    host.clear()
    host.answer("full", PROMPT, GREEDY)
    replied = host.sessions["full"].last_replied
    assert replied is not None
    scorer = host.scorer("base")
    assert scorer is not None
    results = []
    for full_logits in (True, False):
        scorer.cached.clear()
        scorer.full_logits = full_logits
        scoring = Scoring(scorer, "base", replied)
        steps, found = 0, []
        while not scoring.done:
            found += scoring.step()
            steps += 1
        results.append((found[0], steps))
    (chunked, chunk_steps), (one_by_one, token_steps) = results
    assert chunk_steps < token_steps  # a chunk per step, against a token per step
    assert chunked.departs_at == one_by_one.departs_at and chunked.pieces == one_by_one.pieces
    gap = torch.tensor(chunked.logprobs) - torch.tensor(one_by_one.logprobs)
    assert float(gap.abs().max()) < 1e-3


def test_an_idle_scorer_goes_and_the_next_score_makes_one_again(
    host: ModelHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy of the base replies are scored on goes once idle (here at once), with its
    KV cache; the next reply scored gets a new copy and the same scores."""
    monkeypatch.setattr(host_module, "SCORER_IDLE_S", 0.0)
    host.clear()
    host._scorers.clear()  # noqa: SLF001  (made by the tests before: start without one)
    host.answer("full", PROMPT, GREEDY)
    replied = host.sessions["full"].last_replied
    assert replied is not None
    found = []
    for _ in range(2):
        host.score("base", replied)
        assert "base" in host._scorers  # noqa: SLF001
        while host.busy:
            found += [e for e in host.step() if isinstance(e, Departure)]
        assert host.idle_chore_s() == 0.0  # due now: a lane waits no longer
        assert host.step() == [] and not host._scorers  # noqa: SLF001
        assert host.idle_chore_s() is None  # nothing more to do: a lane waits for commands
    first, second = found
    assert first.pieces == second.pieces and first.departs_at == second.departs_at
    assert first.logprobs == pytest.approx(second.logprobs, abs=1e-5)


def test_the_engine_scores_each_adapters_reply_in_the_bases_lane(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    events = EventCollector()
    engine = EngineProcess(
        tiny_artifacts.foundation, events, log_path=tmp_path / "engine.log", panes=2
    )
    try:
        for name in ("base", "full"):
            engine.load(tiny_artifacts.program(name))
        engine.send({"base": PROMPT, "full": PROMPT}, GREEDY)
        got = events.wait_for(
            lambda got: (
                any(isinstance(e, Departure) for e in got)
                and sum(isinstance(e, ReplyDone) for e in got) == 2
            ),
            LOADS_S,
        )
    finally:
        engine.close()
    [departure] = [e for e in got if isinstance(e, Departure)]
    [full_done] = [e for e in got if isinstance(e, ReplyDone) and e.adapter == "full"]
    assert departure.adapter == "full" and departure.base == "base"
    assert "".join(departure.pieces) == full_done.text
    assert got.index(departure) > got.index(full_done)
