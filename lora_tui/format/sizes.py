"""Size arithmetic from a manifest's ``shape``: projection shapes, LoRA and KV-cache bytes.
The memory panel and the benchmarks compare what a program costs against these."""

from __future__ import annotations

from typing import Any

# The sizes every manifest ``shape`` has, each a positive integer (``manifest.py`` checks).
SHAPE_SIZES = ("dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_dim", "vocab_size")
PROJECTION_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def projection_features(shape: dict[str, Any], projection: str) -> tuple[int, int]:
    """(in_features, out_features) of a projection of the manifest's ``shape``."""
    dim, hidden = shape["dim"], shape["hidden_dim"]
    q_out = shape["n_heads"] * shape["head_dim"]
    kv_out = shape["n_kv_heads"] * shape["head_dim"]
    return {
        "q_proj": (dim, q_out),
        "k_proj": (dim, kv_out),
        "v_proj": (dim, kv_out),
        "o_proj": (q_out, dim),
        "gate_proj": (dim, hidden),
        "up_proj": (dim, hidden),
        "down_proj": (hidden, dim),
    }[projection]


def lora_weight_bytes(shape: dict[str, Any], rank: int, targets: list[str]) -> int:
    """fp32 bytes of LoRA A [r, in] and B [out, r] on ``targets`` in every layer."""
    per_layer = sum(rank * sum(projection_features(shape, t)) for t in targets)
    return per_layer * shape["n_layers"] * 4


def kv_cache_bytes(shape: dict[str, Any], max_context: int) -> int:
    """fp32 keys and values for ``max_context`` positions in every layer."""
    return 2 * shape["n_layers"] * max_context * shape["n_kv_heads"] * shape["head_dim"] * 4
