"""One adapter program and its conversation: prefill, decode, KV reuse, overflow, cancel.

A reply advances one unit of work per ``step()`` (a prefill chunk or one decoded token), so
a scheduler can interleave several adapters and keep every pane moving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lora_tui.engine.chat import ChatFormat
from lora_tui.engine.sampling import pick_token
from lora_tui.engine.types import (
    EngineError,
    GenerationSettings,
    Message,
    Notice,
    Piece,
    ReplyDone,
    ReplyEnd,
    ReplyStats,
)

Event = Notice | Piece | ReplyDone
Embed = Callable[[list[int]], torch.Tensor]  # token ids -> the [1, T, dim] a program takes
PREFILL_CHUNK = 32  # tokens per forward while prefilling; small enough to interleave fairly


def load_module(pte: Path, ptd: Path) -> Any:
    import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (registers custom_sdpa)
    from executorch.extension.pybindings.portable_lib import Verification, _load_for_executorch

    try:
        return _load_for_executorch(
            str(pte), data_path=str(ptd), program_verification=Verification.InternalConsistency
        )
    except RuntimeError as err:
        raise EngineError(f"{pte}: could not load ({err})") from None


def warm_up(module: Any, embed: Embed, pte: Path, ptd: Path) -> None:
    """Run one token: loads the method and packs its weights now, so load time and memory
    are measured at load. Position 0 is overwritten by the first real prefill."""
    try:
        module.forward([embed([0]), torch.tensor([0], dtype=torch.long)])
    except RuntimeError as err:
        raise EngineError(f"{pte}: does not run over {ptd} ({err})") from None


def read_constant(module: Any, name: str) -> Any:
    if name not in module.method_names():
        return None
    value = module.run_method(name, [])
    return value[0] if isinstance(value, list | tuple) and len(value) == 1 else value


@dataclass
class ProgramLimits:
    max_context: int
    max_prefill: int

    @classmethod
    def of(cls, module: Any) -> ProgramLimits:
        return cls(
            int(read_constant(module, "get_max_context_len")),
            int(read_constant(module, "get_max_seq_len")),
        )


@dataclass
class AdapterSession:
    name: str
    module: Any
    embed: Embed
    chat: ChatFormat
    limits: ProgramLimits
    messages: list[Message] = field(default_factory=list)
    cached: list[int] = field(default_factory=list)  # tokens whose K/V sit at positions 0..n-1
    last_reply_tokens: list[int] = field(default_factory=list)

    def clear(self) -> None:
        self.messages.clear()
        self.cached.clear()

    def forward(self, tokens: list[int], pos: int) -> torch.Tensor:
        outputs = self.module.forward([self.embed(tokens), torch.tensor([pos], dtype=torch.long)])
        return outputs[0][0]

    def reply(self, user_text: str, settings: GenerationSettings) -> Reply:
        return Reply(self, user_text, settings)


class Reply:
    """A reply in progress. Call ``step()`` until it returns a ``ReplyDone``."""

    def __init__(self, session: AdapterSession, user_text: str, settings: GenerationSettings):
        self.session = session
        self.settings = settings
        self.user = Message("user", user_text)
        self.cancelled = False
        self.pending: list[Event] = []
        self._work = self._run()

    def cancel(self) -> None:
        self.cancelled = True

    def step(self) -> list[Event]:
        """Do one unit of work; return the events it produced (the last is ReplyDone at the end)."""
        try:
            next(self._work)
        except StopIteration:
            pass
        except EngineError as err:
            self.pending.append(ReplyDone(self.session.name, "", ReplyEnd.ERROR, None, str(err)))
        except RuntimeError as err:  # the runtime failed mid-reply; the session stays usable
            self.session.cached.clear()
            self.pending.append(
                ReplyDone(self.session.name, "", ReplyEnd.ERROR, None, f"runtime error: {err}")
            )
        events, self.pending = self.pending, []
        return events

    def done(self, events: list[Event]) -> bool:
        return any(isinstance(e, ReplyDone) for e in events)

    def _fit_context(self) -> list[int]:
        """The prompt's tokens, dropping the oldest turns if the conversation outgrew it."""
        session, limits = self.session, self.session.limits
        history = list(session.messages)
        room = min(self.settings.max_new_tokens, limits.max_context // 4)
        tokens = session.chat.encode_chat([*history, self.user])
        dropped = 0
        while len(tokens) + room > limits.max_context and history:
            keep_system = 1 if history[0].role == "system" else 0
            if len(history) <= keep_system:
                break
            del history[keep_system : keep_system + 2]  # the oldest user turn and its reply
            dropped += 2
            tokens = session.chat.encode_chat([*history, self.user])
        if len(tokens) >= limits.max_context:
            raise EngineError(
                f"the message is {len(tokens)} tokens; the context holds {limits.max_context}"
            )
        if dropped:
            session.messages[:] = history
            self.pending.append(
                Notice(
                    session.name,
                    f"context full: dropped the {dropped} "
                    f"oldest messages to fit {limits.max_context} tokens",
                )
            )
        return tokens

    def _run(self) -> Iterator[None]:
        session, settings = self.session, self.settings
        started = time.perf_counter()
        tokens = self._fit_context()
        reused = _common_prefix(session.cached, tokens)
        reused = min(reused, len(tokens) - 1)  # at least one token must run to give logits
        session.cached = session.cached[:reused]
        logits = None
        chunk = min(PREFILL_CHUNK, session.limits.max_prefill)
        for start in range(reused, len(tokens), chunk):
            if self.cancelled:
                break
            piece = tokens[start : start + chunk]
            logits = session.forward(piece, start)
            session.cached.extend(piece)
            yield
        prefill_end = time.perf_counter()

        generator = torch.Generator().manual_seed(settings.seed)
        decoder = session.chat.decoder()
        text: list[str] = []
        new_tokens: list[int] = []
        first_token_at = None
        end = ReplyEnd.LENGTH
        budget = min(settings.max_new_tokens, session.limits.max_context - len(tokens))
        while logits is not None and not self.cancelled:
            token = pick_token(logits, settings.temperature, settings.top_p, generator)
            if first_token_at is None:
                first_token_at = time.perf_counter()
            if token in session.chat.stop_ids:
                end = ReplyEnd.STOP
                break
            new_tokens.append(token)
            piece = decoder.step(session.chat.tokenizer, token)
            if piece:
                text.append(piece)
                self.pending.append(Piece(session.name, piece))
            if len(new_tokens) >= budget:
                end = ReplyEnd.CONTEXT if budget < settings.max_new_tokens else ReplyEnd.LENGTH
                break
            logits = session.forward([token], len(session.cached))
            session.cached.append(token)
            yield
        if self.cancelled:
            end = ReplyEnd.CANCELLED
        finished = time.perf_counter()

        reply = "".join(text)
        session.messages.extend([self.user, Message("assistant", reply)])
        session.last_reply_tokens = new_tokens
        prompt_tokens = len(tokens) - reused
        prefill_s = max(prefill_end - started, 1e-9)
        decode_s = finished - (first_token_at or finished)
        stats = ReplyStats(
            prompt_tokens=prompt_tokens,
            reused_tokens=reused,
            new_tokens=len(new_tokens),
            ttft_s=(first_token_at or finished) - started,
            prefill_tok_s=prompt_tokens / prefill_s,
            decode_tok_s=(len(new_tokens) - 1) / decode_s
            if len(new_tokens) > 1 and decode_s
            else 0.0,
        )
        self.pending.append(ReplyDone(session.name, reply, end, stats))


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
