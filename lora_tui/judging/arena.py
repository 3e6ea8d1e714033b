"""Blind comparisons, as Chatbot Arena runs them: a vote per prompt for one anonymous
answer, a tie or "all bad", and a tally per adapter with an Elo rating.

No Textual here: the app keeps a ``Tally`` for its session, and ``Tally.from_votes`` builds
the same one again from the vote lines of a results file.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lora_tui.judging.records import VoteRecord

TIE = "tie"
ALL_BAD = "all bad"
ELO_START = 1000.0
ELO_K = 32.0  # Arena's K for its online Elo
LABELS = string.ascii_uppercase


def blind_order(names: list[str], rng: random.Random) -> list[str]:
    """The panes' order for one prompt: shuffled, so position says nothing of the adapter."""
    order = list(names)
    rng.shuffle(order)
    return order


@dataclass
class Standing:
    adapter: str
    wins: int = 0
    ties: int = 0
    losses: int = 0
    all_bad: int = 0
    elo: float = ELO_START

    @property
    def votes(self) -> int:
        return self.wins + self.ties + self.losses + self.all_bad


@dataclass
class Tally:
    standings: dict[str, Standing] = field(default_factory=dict)
    votes: int = 0

    def record(self, adapters: list[str], verdict: str) -> None:
        """One vote over the adapters that answered: the winner's name, ``TIE`` or
        ``ALL_BAD``. A winner beats each other adapter; a tie or "all bad" is a draw
        between every pair, as Arena scores "both are bad"."""
        if verdict not in (TIE, ALL_BAD, *adapters):
            raise ValueError(f"a vote for {verdict!r}, which did not answer")
        self.votes += 1
        rows = [self.standings.setdefault(a, Standing(a)) for a in adapters]
        before = {row.adapter: row.elo for row in rows}
        for row in rows:
            if verdict == TIE:
                row.ties += 1
            elif verdict == ALL_BAD:
                row.all_bad += 1
            elif row.adapter == verdict:
                row.wins += 1
            else:
                row.losses += 1
        # Every pair from the ratings before this vote, so the order of the panes is moot.
        for i, first in enumerate(rows):
            for second in rows[i + 1 :]:
                if verdict == first.adapter:
                    score = 1.0
                elif verdict == second.adapter:
                    score = 0.0
                elif verdict in (TIE, ALL_BAD):
                    score = 0.5
                else:
                    continue  # a third adapter won: these two did not play each other
                expected = 1 / (1 + 10 ** ((before[second.adapter] - before[first.adapter]) / 400))
                first.elo += ELO_K * (score - expected)
                second.elo -= ELO_K * (score - expected)

    def ranked(self) -> list[Standing]:
        return sorted(self.standings.values(), key=lambda s: (-s.elo, s.adapter))

    @classmethod
    def from_votes(cls, votes: Iterable[VoteRecord]) -> Tally:
        tally = cls()
        for vote in votes:
            tally.record(list(vote.adapters), vote.verdict)
        return tally
