"""Rounds, blind mode and prompt sets as judging keeps them, without an app: each takes
what happened and says what to show (judging/rounds.py, blind.py, prompt_set.py)."""

from __future__ import annotations

import random

from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import GenerationSettings, ReplyEnd, ReplyStats
from lora_tui.judging.arena import ALL_BAD
from lora_tui.judging.blind import MAX_ADAPTERS, BlindSession
from lora_tui.judging.evaluate import EvalResult, PromptCase
from lora_tui.judging.prompt_set import Ask, Done, PromptSetRun
from lora_tui.judging.rounds import Rounds

STATS = ReplyStats(10, 0, 5, 0.1, 100.0, 20.0)


def done(adapter: str, text: str = "ok", end: ReplyEnd = ReplyEnd.STOP) -> ReplyDone:
    return ReplyDone(adapter, text, end, STATS, "boom" if end is ReplyEnd.ERROR else None)


# --- rounds -----------------------------------------------------------------------------------


def test_a_round_closes_when_every_adapter_answered_and_sums_their_speed() -> None:
    rounds = Rounds()
    round = rounds.start("hi", ["a", "b"])
    rounds.sent(["a", "b"], round)
    assert rounds.reply_done(done("a")) == (round, False)
    assert rounds.reply_done(done("b")) == (round, True)
    assert round.finished.is_set() and round.together_tok_s() == 40.0
    assert rounds.reply_done(done("a")) == (None, False)  # nothing in progress any more


def test_an_adapter_that_keeps_a_round_answers_it_later_in_that_round() -> None:
    rounds = Rounds()
    first = rounds.start("one", ["a", "late"], later=["late"])
    second = rounds.start("two", ["a", "late"], later=["late"])
    assert rounds.keeps("late") and first.together == {"a"}
    assert rounds.next_kept("late") is first
    assert rounds.next_kept("late") is second
    assert rounds.next_kept("late") is None and not rounds.keeps("late")


def test_a_round_stops_waiting_for_an_adapter_that_misses_it_or_goes() -> None:
    rounds = Rounds()
    kept = rounds.start("one", ["a", "late"], later=["late"])
    rounds.sent(["a"], kept)
    rounds.reply_done(done("a"))
    assert rounds.miss("late") == [kept]  # it closed the round
    assert kept.finished.is_set() and kept.adapters == ["a"]
    last = rounds.start("two", ["a", "b"])
    rounds.sent(["a", "b"], last)
    rounds.reply_done(done("a"))
    assert rounds.drop("b") == [last] and rounds.answering == {}


def test_again_answers_in_the_last_round_until_it_is_voted_on() -> None:
    rounds = Rounds()
    round = rounds.start("hi", ["a", "b"])
    rounds.sent(["a", "b"], round)
    rounds.reply_done(done("a"))
    rounds.reply_done(done("b"))
    assert rounds.again("hi", ["a"]) is round and not round.finished.is_set()
    assert round.together == {"a"}
    round.voted = True
    other = rounds.again("hi", ["a"])
    assert other is not round and other.adapters == ["a"] and rounds.last is other


# --- blind mode -------------------------------------------------------------------------------


def test_blind_mode_refuses_while_answering_or_with_too_few_or_many_adapters() -> None:
    blind = BlindSession()
    assert blind.toggle(answering=True, working=2) is not None and not blind.on
    assert "2 to 9" in (blind.toggle(answering=False, working=1) or "")
    assert blind.toggle(answering=False, working=MAX_ADAPTERS + 1) is not None
    assert blind.toggle(answering=False, working=2) is None and blind.on
    assert blind.refuses_prompt(ready=1, working=2) is not None
    assert blind.refuses_prompt(ready=2, working=2) is None
    assert blind.toggle(answering=False, working=1) is None and not blind.on  # off always


def test_a_blind_round_asks_for_a_vote_once_then_reveals_the_names() -> None:
    blind = BlindSession(random.Random(4))
    blind.toggle(answering=False, working=2)
    order = blind.order(["nobel", "base"])
    round = Rounds().start("Who won?", order, blind=True)
    assert blind.vote_due(round) == 2
    reveal = blind.vote(round, 1)
    assert reveal is not None and reveal.verdict == order[1]
    assert reveal.summary == f"A = {order[0]}, B = {order[1]} · you voted B ({order[1]})"
    assert reveal.record is not None and reveal.record.round == round.id
    assert blind.tally.standings[order[1]].wins == 1
    assert blind.vote_due(round) is None and blind.vote(round, 0) is None  # voted already


def test_a_skipped_vote_reveals_without_a_tally_or_a_line() -> None:
    blind = BlindSession()
    blind.toggle(answering=False, working=2)
    round = Rounds().start("q", ["a", "b"], blind=True)
    reveal = blind.vote(round, None)
    assert reveal is not None and reveal.record is None and blind.tally.votes == 0
    assert reveal.summary.endswith("· no vote")
    other = Rounds().start("q", ["a", "b"], blind=True)
    assert blind.vote(other, ALL_BAD) is not None and blind.tally.votes == 1
    assert blind.vote(Rounds().start("q", ["a", "b"]), 0) is None  # not a blind round


# --- prompt sets ------------------------------------------------------------------------------

CASES = [
    PromptCase("one?", "g", keywords=("ok",)),
    PromptCase("two?", "g", keywords=("ok",)),
    PromptCase("three?", "g", keywords=("ok",)),
]


def scored(case: PromptCase, *answers: ReplyDone) -> dict[str, EvalResult]:
    settings = GenerationSettings()
    return {d.adapter: EvalResult.scored(case, d.adapter, d, settings) for d in answers}


def test_a_prompt_set_asks_each_prompt_then_reports() -> None:
    run = PromptSetRun(CASES[:2], ["a", "b"])
    step = run.first()
    assert isinstance(step, Ask) and (step.case, step.number, step.total) == (CASES[0], 1, 2)
    step = run.scored(scored(CASES[0], done("a"), done("b", "no")))
    assert isinstance(step, Ask) and step.case is CASES[1] and step.number == 2
    step = run.scored(scored(CASES[1], done("a"), done("b")))
    assert isinstance(step, Done) and (step.answered, step.total) == (2, 2)
    assert step.report.score("g", "a") == (2, 2) and step.report.score("g", "b") == (1, 2)


def test_a_cancelled_answer_ends_the_set_without_that_prompt() -> None:
    run = PromptSetRun(CASES, ["a", "b"])
    run.first()
    run.scored(scored(CASES[0], done("a"), done("b")))
    step = run.scored(scored(CASES[1], done("a"), done("b", "cut", ReplyEnd.CANCELLED)))
    assert isinstance(step, Done) and step.answered == 1 and len(step.report.results) == 2


def test_an_adapter_gone_partway_leaves_the_set_and_the_others_go_on() -> None:
    # It was unloaded, or failed to load again after its engine restarted: its answer never
    # comes. The app looked it up in the round's replies and raised KeyError.
    run = PromptSetRun(CASES, ["a", "gone", "b"])
    run.first()
    run.scored(scored(CASES[0], done("a"), done("gone"), done("b")))
    step = run.scored(scored(CASES[1], done("a"), done("b")))
    assert isinstance(step, Ask) and step.left == ("gone",) and run.adapters == ["a", "b"]
    step = run.scored(scored(CASES[2], done("a"), done("b", "no")))
    assert isinstance(step, Done) and step.answered == 3
    report = step.report
    assert report.adapters == ["a", "b"]
    assert [r.adapter for r in report.results] == ["a", "b"] * 3  # a mark per adapter per row
    assert report.score("g", "b") == (2, 3)


def test_a_set_every_adapter_left_is_over() -> None:
    run = PromptSetRun(CASES, ["a"])
    run.first()
    step = run.scored({})
    assert isinstance(step, Done) and step.answered == 0 and step.left == ("a",)


def test_a_regex_out_of_time_is_noted_once_per_prompt() -> None:
    run = PromptSetRun(CASES[:1], ["a", "b"])
    run.first()
    settings = GenerationSettings()
    results = {
        name: EvalResult(CASES[0], name, done(name), False, settings, note="regex took long")
        for name in ("a", "b")
    }
    step = run.scored(results)
    assert isinstance(step, Done) and step.notes == ("regex took long",)
