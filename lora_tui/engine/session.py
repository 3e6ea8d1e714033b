"""The reply loop: one adapter program answering a conversation it is handed (prefill,
decode, KV reuse, overflow, cancel). The conversation belongs to the caller; a session keeps
only the tokens whose K/V sit in the program's cache, so a conversation that goes on (or a
prompt answered again) prefills only what is new.

A reply advances one unit of work per ``step()`` (a prefill chunk or one decoded token), so
a scheduler can interleave several adapters and keep every pane moving.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lora_tui.engine.chat import ChatFormat
from lora_tui.engine.loading import ProgramFacts, position_input, token_input
from lora_tui.engine.protocol import Piece, Replied, ReplyDone
from lora_tui.engine.sampling import pick_token
from lora_tui.engine.threads import threads_in_use
from lora_tui.engine.types import (
    EngineError,
    GenerationSettings,
    Message,
    ReplyEnd,
    ReplyStats,
)
from lora_tui.format import ArtifactError, one_line

Event = Piece | ReplyDone
# Tokens per forward while prefilling beside other replies of this process: small enough to
# interleave fairly. A reply alone in its process prefills as many as the program takes at
# once: 1,525 tokens of history on the 1B shape, fp32, 24.2 s in chunks of 32 and 19.8 s in
# 127 (8da4w 10.6 and 9.0 s).
PREFILL_CHUNK = 32


@dataclass
class AdapterSession:
    name: str
    module: Any
    chat: ChatFormat
    facts: ProgramFacts
    cached: list[int] = field(default_factory=list)  # tokens whose K/V sit at positions 0..n-1
    last_reply_tokens: list[int] = field(default_factory=list)
    # The last reply that ended whole (a stop token or its length), in tokens, to be
    # scored under the base (``departure.py``); None after a cancelled or failed one.
    last_replied: Replied | None = None
    # Whether the program returns every position's logits (None: not seen yet).
    full_logits: bool | None = None
    # The load probe's tokens and last logits (float32 bytes), until the host hands them on.
    probe: tuple[tuple[int, ...], bytes] | None = None

    def forward(self, tokens: list[int], pos: int) -> torch.Tensor:
        outputs = self.module.forward([token_input(tokens), position_input(pos)])
        return outputs[0].reshape(-1, outputs[0].shape[-1])[-1]

    def reply(self, messages: Sequence[Message], settings: GenerationSettings) -> Reply:
        return Reply(self, messages, settings)


class Reply:
    """A reply to the last message of ``messages``, in progress. Call ``step()`` until it
    returns a ``ReplyDone``."""

    def __init__(
        self, session: AdapterSession, messages: Sequence[Message], settings: GenerationSettings
    ):
        self.session = session
        self.settings = settings
        self.messages = list(messages)
        self.forgotten = 0  # the oldest messages left out to fit the context
        self.cancelled = False
        self.pending: list[Event] = []
        self.threads: int | None = None  # the fewest pool threads a step ran on so far
        self.alone = False  # no other reply of this process waits for its next step
        self._work = self._run()

    def cancel(self) -> None:
        self.cancelled = True

    def step(self) -> list[Event]:
        """Do one unit of work; return the events it produced (the last is ReplyDone at the end)."""
        if (threads := threads_in_use()) is not None:
            self.threads = min(threads, self.threads or threads)
        try:
            next(self._work)
        except StopIteration:
            pass
        except ArtifactError as err:
            self._failed(str(err))
        except Exception as err:  # the runtime failed mid-reply; the session stays usable
            self.session.cached.clear()
            self._failed(one_line(err))
        events, self.pending = self.pending, []
        return events

    def _failed(self, error: str) -> None:
        self.session.last_replied = None
        name = self.session.name
        self.pending.append(ReplyDone(name, "", ReplyEnd.ERROR, None, error, self.forgotten))

    def done(self, events: list[Event]) -> bool:
        return any(isinstance(e, ReplyDone) for e in events)

    def _fit_context(self) -> list[int]:
        """The prompt's tokens, leaving out the oldest turns if the conversation outgrew the
        context (a system message stays)."""
        facts, chat, thinking = self.session.facts, self.session.chat, self.settings.thinking
        if not self.messages or self.messages[-1].role != "user":
            raise EngineError("a conversation to answer must end with a user message")
        *history, prompt = self.messages
        keep_system = 1 if history and history[0].role == "system" else 0
        room = min(self.settings.max_new_tokens, facts.max_context // 4)
        tokens = chat.encode_chat([*history, prompt], thinking)
        while len(tokens) + room > facts.max_context and len(history) > keep_system:
            del history[keep_system : keep_system + 2]  # the oldest user turn and its reply
            self.forgotten += 2
            tokens = chat.encode_chat([*history, prompt], thinking)
        if len(tokens) >= facts.max_context:
            raise EngineError(
                f"the message is {len(tokens)} tokens; the context holds {facts.max_context}"
            )
        return tokens  # ReplyDone.forgotten tells the conversation's owner what was left out

    def _run(self) -> Iterator[None]:
        started = time.perf_counter()
        tokens = self._fit_context()
        # At least one token must run to give logits.
        reused = min(common_prefix(self.session.cached, tokens), len(tokens) - 1)
        logits = yield from self._prefill(tokens, reused)
        prefill_s = max(time.perf_counter() - started, 1e-9)
        decoded = _Decoded()
        budget = min(self.settings.max_new_tokens, self.session.facts.max_context - len(tokens))
        yield from self._decode(logits, budget, decoded)
        finished = time.perf_counter()
        reply = "".join(decoded.text)
        self.session.last_reply_tokens = decoded.tokens
        prompt_tokens = len(tokens) - reused
        first_token_at = decoded.first_token_at or finished
        decode_s = finished - first_token_at
        new_tokens = len(decoded.tokens)
        stats = ReplyStats(
            prompt_tokens=prompt_tokens,
            reused_tokens=reused,
            new_tokens=new_tokens,
            ttft_s=first_token_at - started,
            prefill_tok_s=prompt_tokens / prefill_s,
            decode_tok_s=(new_tokens - 1) / decode_s if new_tokens > 1 and decode_s else 0.0,
            threads=self.threads,
        )
        end = ReplyEnd.CANCELLED if self.cancelled else decoded.end
        whole = end in (ReplyEnd.STOP, ReplyEnd.LENGTH, ReplyEnd.CONTEXT)
        self.session.last_replied = (
            Replied(self.session.name, tuple(tokens), tuple(decoded.tokens), end == ReplyEnd.STOP)
            if whole
            else None
        )
        self.pending.append(ReplyDone(self.session.name, reply, end, stats, None, self.forgotten))

    def _prefill(self, tokens: list[int], reused: int) -> Generator[None, None, Any]:
        """Run the tokens past the reused prefix in chunks; the last chunk's logits."""
        session = self.session
        session.cached = session.cached[:reused]
        logits = None
        start, largest = reused, session.facts.max_prefill
        while start < len(tokens) and not self.cancelled:
            # Decided a chunk at a time: another reply may start meanwhile.
            size = largest if self.alone else min(PREFILL_CHUNK, largest)
            piece = tokens[start : start + size]
            logits = session.forward(piece, start)
            session.cached.extend(piece)
            start += len(piece)
            yield
        return logits

    def _decode(self, logits: Any, budget: int, decoded: _Decoded) -> Iterator[None]:
        """Pick and run one token a step until a stop token, the budget or a cancel."""
        session, settings = self.session, self.settings
        generator = torch.Generator().manual_seed(settings.seed)
        decoder = session.chat.decoder()
        while logits is not None and not self.cancelled:
            token = pick_token(logits, settings.temperature, settings.top_p, generator)
            if decoded.first_token_at is None:
                decoded.first_token_at = time.perf_counter()
            if token in session.chat.stop_ids:
                decoded.end = ReplyEnd.STOP
                return
            decoded.tokens.append(token)
            piece = decoder.step(session.chat.tokenizer, token)
            if piece:
                decoded.text.append(piece)
                self.pending.append(Piece(session.name, piece))
            if len(decoded.tokens) >= budget:
                context_full = budget < settings.max_new_tokens
                decoded.end = ReplyEnd.CONTEXT if context_full else ReplyEnd.LENGTH
                return
            logits = session.forward([token], len(session.cached))
            session.cached.append(token)
            yield


@dataclass
class _Decoded:
    """What a reply's decode loop produced."""

    text: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    end: ReplyEnd = ReplyEnd.LENGTH


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
