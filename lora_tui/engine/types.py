"""The engine's typed interface: what the UI, scripts and benchmarks send and receive."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lora_tui.format import ArtifactError


class EngineError(ArtifactError):
    """Bad input to the engine: one line that names the file and the problem."""


@dataclass(frozen=True)
class GenerationSettings:
    temperature: float = 0.0  # 0 is greedy
    top_p: float = 0.9
    max_new_tokens: int = 128
    seed: int = 0
    thinking: bool = False  # let a model with a thinking switch (Qwen3) think first


@dataclass(frozen=True)
class Sharing:
    enabled: bool
    detail: str  # why it is off, or how it was confirmed


@dataclass(frozen=True)
class MemoryBreakdown:
    """Where an adapter's memory went, in MiB, as far as the files tell (None: unknown, for a
    program lora-export did not describe in a manifest)."""

    adapter_weights_mib: float | None  # LoRA A and B, fp32
    kv_cache_mib: float | None
    program_mib: float  # the .pte on disk: adapter weights plus the program itself


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: str
    kind: str  # "adapter" or "base" (from lora-export's manifest), else "program"
    rank: int | None  # None: unknown
    target_modules: tuple[str, ...] | None  # None: unknown
    check_s: float  # the pre-flight in a child process
    load_s: float  # loading into the shared process, packing and one warm-up token
    rss_before_mib: float
    rss_after_mib: float
    pss_before_mib: float | None
    pss_after_mib: float | None
    uss_after_mib: float | None
    anon_increment_mib: float | None  # RssAnon: private memory this program added
    breakdown: MemoryBreakdown
    can_think: bool = False  # its chat template has a thinking switch (Qwen3)
    quantization: str | None = None  # "fp32", "8da4w g32"; None: unknown (no manifest)
    foundation: str = ""  # the foundation weight file it runs over
    scale: float | None = None  # its lora_B times this (lora-export's manifest says); None: 1
    process: int | None = None  # the process that holds it (a lane)
    # The anonymous memory its load added to that process ([start, end) addresses): its KV
    # cache, buffers and LoRA weights, which the memory panel names as this adapter's.
    ranges: tuple[tuple[int, int], ...] = ()
    heap_mib: float = 0.0  # and what it allocated inside malloc's heap there (malloc's count)

    @property
    def increment_mib(self) -> float:
        """What RSS grew by. RSS counts a file page once per mapping, so a foundation page
        that two programs map counts twice: this overstates the cost."""
        return self.rss_after_mib - self.rss_before_mib

    @property
    def true_increment_mib(self) -> float | None:
        """What the program really added: PSS splits each shared page among its mappings."""
        if self.pss_after_mib is None or self.pss_before_mib is None:
            return None
        return self.pss_after_mib - self.pss_before_mib


@dataclass(frozen=True)
class ReplyStats:
    prompt_tokens: int  # tokens prefilled for this reply (after KV reuse)
    reused_tokens: int  # tokens already in the KV cache
    new_tokens: int
    ttft_s: float
    prefill_tok_s: float
    decode_tok_s: float
    # The fewest of XNNPACK's threads any of its steps ran on (None: unknown): fewer than
    # the pool's while other lanes answered too.
    threads: int | None = None


class ReplyEnd(StrEnum):
    STOP = "stop"  # the model emitted a stop token
    LENGTH = "length"  # max_new_tokens reached
    CONTEXT = "context"  # the context window is full
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True)
class Message:
    role: str
    content: str
