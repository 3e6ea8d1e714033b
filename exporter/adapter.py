"""Read a PEFT LoRA adapter and turn it into the weights ExecuTorch's LoRA layer computes.

ExecuTorch's ``LoRALinear`` computes ``W x + (alpha / r) * B A x`` with one rank and one alpha
for the whole model, on the same projection types in every layer. PEFT is richer. Each
difference that keeps the math exact is folded into the weights:

* per-module scale (rsLoRA's ``alpha / sqrt(r)``, ``alpha_pattern``) is multiplied into B,
  and the model's own scale is set to 1;
* per-module rank (``rank_pattern``) is zero-padded to the largest rank;
* layers an adapter skips (``layers_to_transform``) get all-zero A and B.

Zero rows and columns add exactly nothing, so the program computes what PEFT computes.
Features that cannot be expressed this way (DoRA, ``modules_to_save``, LoRA bias, targets
outside the seven projections) are refused with a clear message.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from exporter.base import PROJECTIONS, LlamaShape, read_safetensors
from exporter.errors import ExportError
from lora_tui.format import read_json_file

_KEY = re.compile(
    r"^base_model\.model\.model\.layers\.(?P<layer>\d+)\.(?:self_attn|mlp)\."
    r"(?P<proj>[qkvo]_proj|gate_proj|up_proj|down_proj)\.lora_(?P<ab>[AB])\.weight$"
)


@dataclass
class Adapter:
    name: str
    source: Path
    rank: int  # the rank of the exported program (largest rank in the adapter)
    alpha: float
    use_rslora: bool
    targets: list[str]  # projection names, in PROJECTIONS order
    weights: dict[str, torch.Tensor]  # ExecuTorch names (layers.N.attention.wq.lora_a.weight ...)
    source_sha256: str
    size_bytes: int  # adapter_model.safetensors on disk

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "alpha": self.alpha,
            "use_rslora": self.use_rslora,
            "target_modules": self.targets,
            "source": str(self.source),
            "source_sha256": self.source_sha256,
        }


def load_adapter(name: str, directory: Path, shape: LlamaShape) -> Adapter:
    if not directory.is_dir():
        what = "no such directory" if not directory.exists() else "not a directory"
        raise ExportError(f"{directory}: {what} (expected a PEFT adapter directory)")
    config_path = directory / "adapter_config.json"
    weights_path = directory / "adapter_model.safetensors"
    if not weights_path.is_file() and (directory / "adapter_model.bin").is_file():
        raise ExportError(
            f"{directory / 'adapter_model.bin'}: pickled adapters are not read; "
            "save the adapter with safetensors (PEFT's default)"
        )
    config = read_json_file(config_path)
    _refuse_unsupported(config, config_path)
    raw = read_safetensors(weights_path)
    weights, targets, rank = _convert(raw, config, shape, weights_path)
    digest = hashlib.sha256()
    for part in (config_path, weights_path):
        digest.update(part.read_bytes())
    return Adapter(
        name=name,
        source=directory,
        rank=rank,
        alpha=float(config.get("lora_alpha", 8)),
        use_rslora=bool(config.get("use_rslora")),
        targets=targets,
        weights=weights,
        source_sha256=digest.hexdigest(),
        size_bytes=weights_path.stat().st_size,
    )


def _refuse_unsupported(config: dict[str, Any], origin: Path) -> None:
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise ExportError(f"{origin}: adapter type {peft_type} is not supported (only LORA)")
    refusals = {
        "use_dora": "DoRA is not supported (ExecuTorch's LoRA layer has no magnitude vector)",
        "modules_to_save": "modules_to_save is not supported (it replaces whole base modules)",
        "lora_bias": "LoRA bias is not supported (ExecuTorch's LoRA layer has no bias)",
        "fan_in_fan_out": "fan_in_fan_out adapters (GPT-2 style Conv1D) are not supported",
        "layer_replication": "layer_replication is not supported",
        "trainable_token_indices": "trainable_token_indices is not supported",
        "target_parameters": "target_parameters is not supported",
        "alora_invocation_tokens": "activated LoRA (aLoRA) is not supported",
        "use_qalora": "QA-LoRA is not supported",
    }
    for key, message in refusals.items():
        if config.get(key):
            raise ExportError(f"{origin}: {message}")
    if config.get("bias", "none") != "none":
        raise ExportError(f"{origin}: bias='{config['bias']}' trains base biases; not supported")
    targets = config.get("target_modules")
    names = [targets] if isinstance(targets, str) else list(targets or [])
    outside = [t for t in names if t in ("embed_tokens", "lm_head")]
    if outside:
        raise ExportError(
            f"{origin}: target '{outside[0]}' is not supported "
            "(only q,k,v,o,gate,up,down projections)"
        )


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """PEFT's rule: the first pattern that matches the end of the module's full name wins."""
    for pattern, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return default


def _convert(
    raw: dict[str, torch.Tensor], config: dict[str, Any], shape: LlamaShape, origin: Path
) -> tuple[dict[str, torch.Tensor], list[str], int]:
    """PEFT's A and B per layer and projection, checked against the base and scaled by
    alpha/r (or alpha/sqrt(r) for rsLoRA), padded to one rank as the programs take them."""
    scaled = _scaled(_pairs(raw, shape, origin), config, shape, origin)
    targets = [p for p in PROJECTIONS if any(proj == p for _, proj in scaled)]
    max_rank = max(a.shape[0] for a, _ in scaled.values())
    weights: dict[str, torch.Tensor] = {}
    for layer in range(shape.n_layers):
        for proj in targets:
            in_features, out_features = shape.projection_shape(proj)
            lora_a = torch.zeros(max_rank, in_features)
            lora_b = torch.zeros(out_features, max_rank)
            if (layer, proj) in scaled:
                a, b = scaled[(layer, proj)]
                lora_a[: a.shape[0]] = a
                lora_b[:, : b.shape[1]] = b
            prefix = f"layers.{layer}.{PROJECTIONS[proj]}"
            weights[f"{prefix}.lora_a.weight"] = lora_a
            weights[f"{prefix}.lora_b.weight"] = lora_b
    return weights, targets, max_rank


def _pairs(
    raw: dict[str, torch.Tensor], shape: LlamaShape, origin: Path
) -> dict[tuple[int, str], dict[str, torch.Tensor]]:
    """{(layer, projection): {"A": ..., "B": ...}} from PEFT's weight names."""
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, tensor in raw.items():
        match = _KEY.match(key)
        if match is None:
            raise ExportError(f"{origin}: unsupported adapter weight '{key}' ({_why(key)})")
        layer = int(match["layer"])
        if layer >= shape.n_layers:
            raise ExportError(
                f"{origin}: adapter for another base: it has layer {layer}, "
                f"the base has {shape.n_layers} layers"
            )
        pairs.setdefault((layer, match["proj"]), {})[match["ab"]] = tensor
    if not pairs:
        raise ExportError(f"{origin}: no LoRA weights found")
    return pairs


def _scaled(
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]],
    config: dict[str, Any],
    shape: LlamaShape,
    origin: Path,
) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
    default_rank = int(config.get("r", 8))
    default_alpha = float(config.get("lora_alpha", 8))
    use_rslora = bool(config.get("use_rslora"))
    scaled: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
    for (layer, proj), ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise ExportError(f"{origin}: layer {layer} {proj} has lora_{next(iter(ab))} only")
        lora_a, lora_b = ab["A"].to(torch.float32), ab["B"].to(torch.float32)
        rank = lora_a.shape[0]
        in_features, out_features = shape.projection_shape(proj)
        if lora_a.shape != (rank, in_features) or lora_b.shape != (out_features, rank):
            raise ExportError(
                f"{origin}: adapter for another base: layer {layer} {proj} has "
                f"A {tuple(lora_a.shape)}, B {tuple(lora_b.shape)}; the base expects "
                f"A (r, {in_features}), B ({out_features}, r)"
            )
        module = f"model.layers.{layer}.{'self_attn' if proj[0] in 'qkvo' else 'mlp'}.{proj}"
        expected_rank = int(_pattern_value(config.get("rank_pattern"), module, default_rank))
        if rank != expected_rank:
            raise ExportError(
                f"{origin}: layer {layer} {proj} has rank {rank}, "
                f"adapter_config says {expected_rank}"
            )
        alpha = float(_pattern_value(config.get("alpha_pattern"), module, default_alpha))
        scale = alpha / math.sqrt(rank) if use_rslora else alpha / rank
        scaled[(layer, proj)] = (lora_a, lora_b * scale)
    return scaled


def _why(key: str) -> str:
    if "lora_magnitude_vector" in key:
        return "DoRA is not supported"
    if "modules_to_save" in key:
        return "modules_to_save is not supported"
    if ".bias" in key:
        return "LoRA bias is not supported"
    if "embed_tokens" in key or "lm_head" in key or "lora_embedding" in key:
        return "only q,k,v,o,gate,up,down projections can be adapted"
    return "not a LoRA weight of a Llama q,k,v,o,gate,up,down projection"
