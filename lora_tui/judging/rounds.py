"""Rounds: one prompt sent to some adapters, until every one of them has answered. Blind
votes, regenerate and prompt sets wait on rounds; the results file names them.

``Rounds`` is the bookkeeping the app's panes need, without Textual: the last prompt's
round, the round each adapter's reply in progress is for, and the rounds an adapter keeps
to answer later (it is still loading), in order. Each change returns the rounds it closed,
for whoever shows them (the together speed, the blind vote)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field
from uuid import uuid4

from lora_tui.engine.protocol import ReplyDone
from lora_tui.judging.evaluate import EvalResult, PromptCase


@dataclass
class Round:
    prompt: str
    adapters: list[str]  # in the order the panes showed them
    blind: bool = False
    case: PromptCase | None = None  # from a prompt set: how to score the answers
    id: str = field(default_factory=lambda: uuid4().hex[:12])
    replies: dict[str, ReplyDone] = field(default_factory=dict)
    # A prompt set's replies, each scored once off the event loop (for its results line and
    # the scores screen alike).
    scores: dict[str, asyncio.Future[EvalResult]] = field(default_factory=dict)
    voted: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    together: set[str] = field(default_factory=set)  # the panes last sent the prompt at once

    def __post_init__(self) -> None:
        self.together = self.together or set(self.adapters)

    def together_tok_s(self) -> float | None:
        """Once every pane sent the prompt at once has answered: their decode speeds summed,
        what the machine gave them together while they shared it (each pane's own figure is
        its speed while sharing). None for a lone reply, or a round still under way."""
        replies = [self.replies[n] for n in self.together if n in self.replies]
        if not self.finished.is_set() or len(replies) < 2:
            return None
        return sum(r.stats.decode_tok_s for r in replies if r.stats)

    def reply_done(self, done: ReplyDone) -> bool:
        """Keep one pane's reply; True when it was the last one this round waited for."""
        if done.adapter not in self.adapters or self.finished.is_set():
            return False
        self.replies[done.adapter] = done
        if set(self.replies) >= set(self.adapters):
            self.finished.set()
            return True
        return False

    def drop(self, name: str) -> bool:
        """A pane went (unloaded, or it will not answer the prompt it kept): stop waiting for
        it. True when that closed the round."""
        if name not in self.adapters:
            return False
        self.adapters.remove(name)
        self.replies.pop(name, None)
        self.scores.pop(name, None)
        if set(self.replies) >= set(self.adapters) and not self.finished.is_set():
            self.finished.set()
            return True
        return False

    def again(self, names: list[str]) -> None:
        """These panes answer again (regenerate): wait for their new replies."""
        for name in names:
            self.replies.pop(name, None)
            self.scores.pop(name, None)
        self.finished.clear()
        self.together = set(names)


class Rounds:
    def __init__(self) -> None:
        self.last: Round | None = None  # the last prompt's, until every pane has answered it
        self.answering: dict[str, Round] = {}  # the round each reply in progress is for
        self.kept: dict[str, list[Round]] = {}  # the rounds an adapter keeps to answer, in order

    def start(
        self,
        prompt: str,
        adapters: list[str],
        later: Collection[str] = (),
        blind: bool = False,
        case: PromptCase | None = None,
    ) -> Round:
        """A new round for ``adapters``; those ``later`` keep it to answer once they can.
        Only the others answer together."""
        round = Round(prompt, list(adapters), blind=blind, case=case)
        round.together = {name for name in adapters if name not in later}
        for name in later:
            self.kept.setdefault(name, []).append(round)
        self.last = round
        return round

    def keeps(self, name: str) -> bool:
        return bool(self.kept.get(name))

    def sent(self, names: list[str], round: Round) -> None:
        """These adapters were just sent the round's prompt."""
        self.answering.update(dict.fromkeys(names, round))

    def next_kept(self, name: str) -> Round | None:
        """The first round ``name`` kept, taken off its list: the next it answers."""
        rounds = self.kept.get(name)
        if not rounds:
            return None
        round = rounds.pop(0)
        if not rounds:
            del self.kept[name]
        return round

    def reply_done(self, done: ReplyDone) -> tuple[Round | None, bool]:
        """A reply ended: the round it was for, and True if it closed that round."""
        round = self.answering.pop(done.adapter, None)
        return round, round is not None and round.reply_done(done)

    def miss(self, name: str) -> list[Round]:
        """``name`` will not answer the rounds it kept: they stop waiting for it. Returns the
        rounds that closed."""
        return [round for round in self.kept.pop(name, []) if round.drop(name)]

    def drop(self, name: str) -> list[Round]:
        """``name`` went (unloaded): no round waits for it. Returns the rounds that closed."""
        closed = self.miss(name)
        for round in (self.last, self.answering.pop(name, None)):
            if round is not None and round.drop(name):
                closed.append(round)
        return closed

    def again(self, prompt: str, names: list[str]) -> Round:
        """These adapters answer ``prompt`` again: in the last round if it was that prompt's
        and is not voted on yet, else in a round of its own."""
        last = self.last
        if last is None or last.voted or last.prompt != prompt:
            last = self.last = Round(prompt, list(names))
        last.again(names)
        return last
