"""The engine's typed interface: what the UI, scripts and benchmarks send and receive."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EngineError(Exception):
    """Bad input to the engine: one line that names the file and the problem."""


@dataclass(frozen=True)
class GenerationSettings:
    temperature: float = 0.0  # 0 is greedy
    top_p: float = 0.9
    max_new_tokens: int = 128
    seed: int = 0


@dataclass(frozen=True)
class Sharing:
    enabled: bool
    detail: str  # why it is off, or how it was confirmed


@dataclass(frozen=True)
class MemoryBreakdown:
    """Where an adapter's memory went, in MiB, as far as it can be known from the files."""

    adapter_weights_mib: float
    kv_cache_mib: float
    program_mib: float  # the .pte on disk: adapter weights plus the program itself


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: str
    kind: str  # "adapter" or "base"
    rank: int | None
    target_modules: tuple[str, ...]
    load_s: float
    rss_before_mib: float
    rss_after_mib: float
    pss_after_mib: float | None
    uss_after_mib: float | None
    anon_increment_mib: float | None  # RssAnon: private memory this program added
    breakdown: MemoryBreakdown

    @property
    def increment_mib(self) -> float:
        return self.rss_after_mib - self.rss_before_mib


@dataclass(frozen=True)
class ReplyStats:
    prompt_tokens: int  # tokens prefilled for this reply (after KV reuse)
    reused_tokens: int  # tokens already in the KV cache
    new_tokens: int
    ttft_s: float
    prefill_tok_s: float
    decode_tok_s: float


class ReplyEnd(StrEnum):
    STOP = "stop"  # the model emitted a stop token
    LENGTH = "length"  # max_new_tokens reached
    CONTEXT = "context"  # the context window is full
    CANCELLED = "cancelled"
    ERROR = "error"


# --- events a generation produces, in order: Notice*, Piece*, ReplyDone -------------------


@dataclass(frozen=True)
class Notice:
    adapter: str
    text: str


@dataclass(frozen=True)
class Piece:
    adapter: str
    text: str


@dataclass(frozen=True)
class ReplyDone:
    adapter: str
    text: str  # the whole reply, kept in the conversation even when cancelled
    end: ReplyEnd
    stats: ReplyStats | None
    error: str | None = None


@dataclass(frozen=True)
class Message:
    role: str
    content: str
