"""A judged session as a results file has it, for the tests of its exports."""

from __future__ import annotations

from lora_tui.engine.types import ReplyEnd
from lora_tui.judging.records import AnswerRecord, Record, VoteRecord

NAMES = ["nobel", "executorch"]


def vote_session() -> list[Record]:
    settings = {"temperature": 0.8, "top_p": 0.9, "max_new_tokens": 64, "seed": 3}
    answers: list[Record] = [
        AnswerRecord(
            round="r1",
            prompt="Who won?",
            adapter=n,
            answer=f"{n} says",
            end=ReplyEnd.STOP,
            settings=settings,
        )
        for n in NAMES
    ]
    vote = VoteRecord(round="r1", prompt="Who won?", adapters=tuple(NAMES), verdict="nobel")
    return [*answers, vote]
