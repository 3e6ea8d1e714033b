"""Where an adapter's reply departs from the base: its tokens run through the base program
over the same foundation (prompt and reply, as the adapter saw them), and at each the base's
log-probability of the adapter's token and the base's own greedy choice.

A program that returns every position's logits (``generate_full_logits``, what lora-export
lowers a base program as) scores a reply in a few prefill chunks, about one prefill of it;
one that returns the last position's only (export_llm's default, a base filled from an
adapter's template) needs a forward per reply token. Which it is shows the first time a
chunk of several tokens runs: a chunk that gives one row is run again token by token (a
forward writes K/V at the positions it is given, so running them again overwrites them).

Scoring runs on a second copy of the base program (``ModelHost``'s scorer): the base's own
pane keeps its KV cache, and the scorer keeps the prompt it last scored, so the next
adapter's reply to the same prompt runs only its own tokens. Its memory is one more KV
cache and the program's own buffers; the foundation's packed weights are shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from lora_tui.engine.chat import ChatFormat
from lora_tui.engine.loading import position_input, token_input
from lora_tui.engine.protocol import Departure, Replied
from lora_tui.engine.session import PREFILL_CHUNK, AdapterSession, common_prefix


@dataclass
class _Rows:
    """What the base predicted at each position from the last prompt token on."""

    logprobs: list[float] = field(default_factory=list)  # of the token that came next
    choices: list[int] = field(default_factory=list)  # the base's greedy token there


class Scoring:
    """One reply being scored, a forward per ``step()`` so the lane interleaves it with other
    work; the last step returns the ``Departure`` (or nothing, for a reply that cannot be
    scored: longer than the base's context)."""

    def __init__(self, scorer: AdapterSession, base: str, replied: Replied) -> None:
        self.scorer, self.base, self.replied = scorer, base, replied
        self.result: Departure | None = None
        self.done = False
        self._work = self._run()

    @property
    def adapter(self) -> str:
        return self.replied.adapter

    def step(self) -> list[Departure]:
        try:
            next(self._work)
            return []
        except StopIteration:
            pass
        except Exception:  # the runtime failed: nothing is said rather than a wrong score,
            self.scorer.cached.clear()  # and the lane, which runs replies too, goes on
        self.done = True
        return [self.result] if self.result is not None else []

    def run(self) -> Departure | None:
        """Every step at once (``eval``, a script): the Departure, or None."""
        while not self.done:
            if found := self.step():
                return found[0]
        return None

    def _run(self) -> Iterator[None]:
        prompt, reply = list(self.replied.prompt), list(self.replied.reply)
        tokens = prompt + reply
        scorer = self.scorer
        if not prompt or len(tokens) > scorer.facts.max_context:
            return
        first = len(prompt) - 1  # the position whose logits predict the reply's first token
        reused = min(common_prefix(scorer.cached, tokens), first)
        scorer.cached = scorer.cached[:reused]
        # The prompt up to its last token: only the last row matters.
        logits = None
        for piece, start in _chunks(tokens, reused, first + 1, self._chunk):
            logits = self._forward(piece, start)
            yield
        assert logits is not None
        rows = _Rows()
        self._take(rows, logits[-1:], tokens[first + 1 : first + 2])
        # The reply: every row (or a forward per token, for a last-logits program).
        position = first + 1
        while position < len(tokens):
            piece = tokens[position : position + self._chunk_for_rows()]
            logits = self._forward(piece, position)
            if logits.shape[0] != len(piece):  # it gives the last row only: one at a time
                self.scorer.full_logits = False
                scorer.cached = scorer.cached[:position]
                continue
            if len(piece) > 1:
                self.scorer.full_logits = True
            self._take(rows, logits, tokens[position + 1 : position + 1 + len(piece)])
            position += len(piece)
            yield
        self.result = self._departure(rows)

    @property
    def _chunk(self) -> int:
        return max(1, min(PREFILL_CHUNK, self.scorer.facts.max_prefill))

    def _chunk_for_rows(self) -> int:
        return self._chunk if self.scorer.full_logits is not False else 1

    def _forward(self, piece: list[int], start: int) -> torch.Tensor:
        outputs = self.scorer.module.forward([token_input(piece), position_input(start)])
        self.scorer.cached.extend(piece)
        return outputs[0].reshape(-1, outputs[0].shape[-1])

    @staticmethod
    def _take(rows: _Rows, logits: torch.Tensor, following: list[int]) -> None:
        """Each row's greedy choice, and the log-probability of the token that followed
        (the last row of the reply has none: what the base would say after it)."""
        logprobs = torch.log_softmax(logits.to(torch.float32), dim=-1)
        rows.choices.extend(int(c) for c in logprobs.argmax(dim=-1))
        rows.logprobs.extend(float(logprobs[i, t]) for i, t in enumerate(following))

    def _departure(self, rows: _Rows) -> Departure:
        reply, chat = self.replied.reply, self.scorer.chat
        departs = next((i for i, t in enumerate(reply) if rows.choices[i] != t), None)
        after = rows.choices[len(reply)]  # the base's choice after the reply's last token
        # Ending on a stop token is the same as the base only if the base would stop there;
        # a reply cut at its length is the base's as far as it goes.
        same = departs is None and (after in chat.stop_ids or not self.replied.stopped)
        choice = rows.choices[departs] if departs is not None else None
        return Departure(
            adapter=self.replied.adapter,
            base=self.base,
            pieces=tuple(_pieces(chat, reply)),
            logprobs=tuple(rows.logprobs[: len(reply)]),
            departs_at=departs,
            base_choice=chat.tokenizer.decode([choice]) if choice is not None else "",
            same_as_base=same,
        )


def _chunks(tokens: list[int], start: int, end: int, size: int) -> Iterator[tuple[list[int], int]]:
    for at in range(start, end, size):
        yield tokens[at : min(at + size, end)], at


def _pieces(chat: ChatFormat, reply: list[int]) -> list[str]:
    """Each token's text as it streamed: the decoder the reply used, token by token, so the
    pieces join to the reply's text ("" for a token inside a character)."""
    decoder = chat.decoder()
    return [decoder.step(chat.tokenizer, token) or "" for token in reply]
