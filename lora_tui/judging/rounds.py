"""A round: one prompt sent to some panes, until every one of them has answered. Blind
votes, regenerate and prompt sets wait on rounds; the results file names them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from uuid import uuid4

from lora_tui.engine.protocol import ReplyDone
from lora_tui.judging.evaluate import PromptCase


@dataclass
class Round:
    prompt: str
    adapters: list[str]  # in the order the panes showed them
    blind: bool = False
    case: PromptCase | None = None  # from a prompt set: how to score the answers
    id: str = field(default_factory=lambda: uuid4().hex[:12])
    replies: dict[str, ReplyDone] = field(default_factory=dict)
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
        if set(self.replies) >= set(self.adapters) and not self.finished.is_set():
            self.finished.set()
            return True
        return False

    def again(self, names: list[str]) -> None:
        """These panes answer again (regenerate): wait for their new replies."""
        for name in names:
            self.replies.pop(name, None)
        self.finished.clear()
        self.together = set(names)
