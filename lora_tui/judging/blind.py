"""Blind mode as a session sees it, without Textual: on or off, a new order for every
prompt, a vote once every answer is in, then the names. The app asks and shows what it
is told: a notice when it refuses, the vote bar when a vote is due, the names once voted.

Chatbot Arena's way of judging, for adapters; the tally and Elo are ``arena.py``'s."""

from __future__ import annotations

import random
from dataclasses import dataclass

from lora_tui.judging.arena import ALL_BAD, LABELS, TIE, Tally, blind_order
from lora_tui.judging.records import VoteRecord
from lora_tui.judging.rounds import Round

MAX_ADAPTERS = 9  # one vote key per answer: a to i


@dataclass(frozen=True)
class Reveal:
    """A blind round voted on (or skipped): who was behind each letter, and the verdict."""

    adapters: list[str]  # in the order their answers were shown: A, B, ...
    verdict: str | None  # a name, TIE, ALL_BAD, or None when skipped
    record: VoteRecord | None  # the vote's results line (none when skipped)

    @property
    def summary(self) -> str:
        """``A = nobel, B = base · you voted A (nobel)``."""
        shown = ", ".join(f"{LABELS[i]} = {name}" for i, name in enumerate(self.adapters))
        if self.verdict is None:
            said = "no vote"
        elif self.verdict in (TIE, ALL_BAD):
            said = f"you voted {self.verdict}"
        else:
            said = f"you voted {LABELS[self.adapters.index(self.verdict)]} ({self.verdict})"
        return f"{shown} · {said}"


class BlindSession:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.on = False
        self.tally = Tally()  # kept for the session, across blind mode on and off

    def toggle(self, answering: bool, working: int) -> str | None:
        """Turn blind mode on or off, or say why not (and leave it as it was). ``working``:
        the adapters that loaded, or are loading."""
        if answering:
            return "wait for the answers, or Esc to cancel them"
        if not self.on and not 2 <= working <= MAX_ADAPTERS:
            return f"blind mode compares 2 to {MAX_ADAPTERS} adapters"
        self.on = not self.on
        return None

    def refuses_prompt(self, ready: int, working: int) -> str | None:
        """Why a blind prompt cannot go yet: every adapter that works answers it at once."""
        if self.on and ready < working:
            return "blind mode waits for every adapter to be ready"
        return None

    def order(self, names: list[str]) -> list[str]:
        """The panes' order for the next prompt: shuffled, so position says nothing."""
        return blind_order(names, self.rng)

    def vote_due(self, round: Round) -> int | None:
        """How many answers to vote on, once ``round`` closed, if it asks for a vote."""
        if self.on and round.blind and not round.voted:
            return len(round.adapters)
        return None

    def vote(self, round: Round | None, choice: int | str | None) -> Reveal | None:
        """``choice``: the index of the answer voted for, ``TIE``, ``ALL_BAD`` or None (no
        vote). None back when ``round`` is no blind round waiting for a vote."""
        if round is None or not round.blind or round.voted:
            return None
        round.voted = True
        names = list(round.adapters)
        if choice is None:
            return Reveal(names, None, None)
        verdict = names[choice] if isinstance(choice, int) else choice
        self.tally.record(names, verdict)
        record = VoteRecord(
            round=round.id, prompt=round.prompt, adapters=tuple(names), verdict=verdict
        )
        return Reveal(names, verdict, record)
