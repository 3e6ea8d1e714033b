"""Is an adapter applied at all? Each program runs a short probe as it loads (the load's
warm-up forward, a few fixed tokens instead of one), and its last logits are compared with
the base program's over the same foundation: an adapter whose logits equal the base's
(an untrained PEFT adapter, all-zero lora_B, target names that matched nothing) answers
as the base does, and the engine says so (``NoEffect``).

The two programs share the foundation's weights, so equal LoRA weights give the same
logits bit for bit: a zero adapter filled into a template and the base program give a
change of exactly 0.0, fp32 or quantized. ``NO_EFFECT_TOLERANCE`` only leaves room for a
base lowered on its own (another graph, another order of float operations); a trained
adapter moves logits by tenths or more. No torch here: the router compares, and the UI
imports the router's module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lora_tui.engine.protocol import NoEffect, Probed

PROBE_TEXT = "The capital of France is"
PROBE_LENGTH = 8  # tokens, BOS included: a prefill of a few tokens costs about one token's
# Attention over one position returns its value whatever q and k are: a probe of one token
# would miss an adapter on q_proj and k_proj only.
NO_EFFECT_TOLERANCE = 1e-4


def probe_tokens(tokenizer: Any, bos_id: int | None, vocab_size: int) -> list[int]:
    """BOS (when the program has one) and the fixed text's first tokens, within the vocab."""
    ids = tokenizer.encode(PROBE_TEXT, add_special_tokens=False).ids
    tokens = ([bos_id] if bos_id is not None else []) + list(ids)
    tokens = [t for t in tokens if 0 <= t < vocab_size][:PROBE_LENGTH]
    return tokens or [0]


def largest_change(logits: bytes, base: bytes) -> float:
    """The largest absolute difference between two float32 logit vectors (inf when their
    lengths differ)."""
    import numpy as np

    ours, theirs = np.frombuffer(logits, np.float32), np.frombuffer(base, np.float32)
    if ours.shape != theirs.shape:
        return float("inf")
    return float(np.max(np.abs(ours.astype(np.float64) - theirs))) if ours.size else 0.0


@dataclass
class NoEffectWatch:
    """The router's side: keeps each loaded program's probe and compares every adapter
    with the base (the router's), once per pair."""

    tolerance: float = NO_EFFECT_TOLERANCE
    probes: dict[str, Probed] = field(default_factory=dict)
    compared: set[tuple[str, str]] = field(default_factory=set)  # (adapter, base)

    def probed(self, probe: Probed) -> None:
        """Keep ``probe`` (a new load)."""
        self.forget(probe.adapter)
        self.probes[probe.adapter] = probe

    def compare(self, base_name: str | None) -> list[NoEffect]:
        """Compare what can be with ``base_name``'s probe: the adapters that do nothing.
        Other base programs are not compared (two bases are alike by design)."""
        base = self.probes.get(base_name) if base_name is not None else None
        if base is None:
            return []  # no base program open: nothing to compare with
        notices = []
        for adapter in self.probes.values():
            pair = (adapter.adapter, base.adapter)
            skip = adapter is base or adapter.base or adapter.tokens != base.tokens
            if skip or pair in self.compared:
                continue
            self.compared.add(pair)
            change = largest_change(adapter.logits, base.logits)
            if change <= self.tolerance:
                notices.append(NoEffect(adapter.adapter, base.adapter, change))
        return notices

    def forget(self, name: str) -> None:
        """``name`` was unloaded (or failed): its probe and comparisons go."""
        self.probes.pop(name, None)
        self.compared = {pair for pair in self.compared if name not in pair}
