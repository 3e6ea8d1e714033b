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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import regex
import torch

from exporter.base import PROJECTIONS, LlamaShape, read_safetensors, safetensors_shapes
from exporter.errors import ExportError
from lora_tui.format import one_line, quoted, read_json_file

T = TypeVar("T")

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
    # Why the adapter may do nothing, or less than meant, in one line (None: no doubt):
    # its weights all zero, or target_modules naming no module of the base.
    warning: str | None = None
    step: int | None = None  # a training run's checkpoint: its step

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "alpha": self.alpha,
            "use_rslora": self.use_rslora,
            "target_modules": self.targets,
            "source": str(self.source),
            "source_sha256": self.source_sha256,
            "step": self.step,
        }


@dataclass(frozen=True)
class LoraSettings:
    """What ``adapter_config.json`` says of the LoRA math, each value of the type PEFT
    writes: a string, a bool or a NaN where a number belongs is refused, not converted."""

    rank: int
    alpha: float
    use_rslora: bool
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]

    @classmethod
    def from_config(cls, config: dict[str, Any], origin: Path) -> LoraSettings:
        use_rslora = config.get("use_rslora")
        if use_rslora is not None and not isinstance(use_rslora, bool):
            raise ExportError(
                f"{origin}: use_rslora must be true or false, not {quoted(use_rslora)}"
            )
        return cls(
            rank=_rank(config.get("r", 8), "r", origin),
            alpha=_alpha(config.get("lora_alpha", 8), "lora_alpha", origin),
            use_rslora=bool(use_rslora),
            rank_pattern=_pattern(config, "rank_pattern", _rank, origin),
            alpha_pattern=_pattern(config, "alpha_pattern", _alpha, origin),
        )


def _rank(value: Any, what: str, origin: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ExportError(f"{origin}: {what} must be a positive integer, not {quoted(value)}")
    return value


def _alpha(value: Any, what: str, origin: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ExportError(f"{origin}: {what} must be a finite number, not {quoted(value)}")
    return float(value)


def _pattern(
    config: dict[str, Any], key: str, check: Callable[[Any, str, Path], T], origin: Path
) -> dict[str, T]:
    patterns = config.get(key) or {}
    if not isinstance(patterns, dict):
        raise ExportError(f"{origin}: {key} must be an object, not {quoted(patterns)}")
    return {
        name: check(value, f"{key}[{quoted(name)}]", origin) for name, value in patterns.items()
    }


def source_sha256(directory: Path) -> str:
    """The hash of an adapter's files, config then weights: a program built from the same
    hash is up to date, so a run exported again skips it without reading its tensors."""
    digest = hashlib.sha256()
    for part in ("adapter_config.json", "adapter_model.safetensors"):
        with (directory / part).open("rb") as handle:
            while chunk := handle.read(2**20):
                digest.update(chunk)
    return digest.hexdigest()


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
    if not isinstance(config, dict):
        raise ExportError(f"{config_path}: not a JSON object")
    _refuse_unsupported(config, config_path)
    settings = LoraSettings.from_config(config, config_path)
    # Every shape and rank is checked from the file's header, before any tensor is read or
    # padded: a rank of 65536 over a 576-wide base is refused, not allocated.
    plan = _plan(safetensors_shapes(weights_path), settings, shape, weights_path)
    raw = read_safetensors(weights_path)
    weights, targets, rank = _convert(raw, plan, shape)
    doubts = [_zero_weights(raw, plan), _unmatched_targets(config.get("target_modules"), shape)]
    return Adapter(
        name=name,
        source=directory,
        rank=rank,
        alpha=settings.alpha,
        use_rslora=settings.use_rslora,
        targets=targets,
        weights=weights,
        source_sha256=source_sha256(directory),
        size_bytes=weights_path.stat().st_size,
        warning="; ".join(d for d in doubts if d) or None,
    )


def _zero_weights(
    raw: dict[str, torch.Tensor], plan: dict[tuple[int, str], _Planned]
) -> str | None:
    """Why the adapter adds exactly nothing, if it does: in every module it adapts, A or B
    (or the scale) is zero. PEFT starts every lora_B at zero, so an adapter saved before
    training exports, loads and answers as the base does."""
    if all(not raw[p.lora_b].any() for p in plan.values()):
        return "all its lora_B weights are zero (PEFT's initial value: saved before training?)"
    if all(not raw[p.lora_a].any() for p in plan.values()):
        return "all its lora_A weights are zero"
    if all(not (p.scale and raw[p.lora_a].any() and raw[p.lora_b].any()) for p in plan.values()):
        return "each module it adapts has a zero lora_A, lora_B or scale"
    return None


def _unmatched_targets(targets: Any, shape: LlamaShape) -> str | None:
    """Which of adapter_config's target_modules name no module of the base, matched as PEFT
    matches them (a list: a module's name or the end of it after a dot; a string: a
    regular expression for the whole name, or "all-linear"). PEFT ignores a name that
    matches nothing as long as another matches, so a typo there is silently not trained."""
    modules = [
        f"model.layers.{layer}.{'self_attn' if p[0] in 'qkvo' else 'mlp'}.{p}"
        for layer in range(shape.n_layers)
        for p in PROJECTIONS
    ]
    if isinstance(targets, str):
        if targets == "all-linear" or _any_fullmatch(targets, modules):
            return None
        return f"its target_modules {quoted(targets)} match no module of the base"
    names = [t for t in targets or () if isinstance(t, str)]
    missing = [t for t in names if not any(m == t or m.endswith(f".{t}") for m in modules)]
    if not missing:
        return None
    which = ", ".join(quoted(t) for t in missing[:4]) + (", ..." if len(missing) > 4 else "")
    if len(missing) == len(names):
        return f"none of its target_modules names a module of the base ({which})"
    matched = len(names) - len(missing)
    return f"{matched} of its {len(names)} target_modules name a module of the base (not {which})"


def _any_fullmatch(pattern: str, names: list[str]) -> bool:
    """PEFT's ``re.fullmatch(target_modules, name)``, with a time limit: the pattern is a
    stranger's. One that does not compile or runs out of time matches nothing."""
    deadline = time.monotonic() + PATTERN_SECONDS
    try:
        compiled = regex.compile(pattern)
        for name in names:
            left = deadline - time.monotonic()
            if left <= 0 or compiled.fullmatch(name, timeout=left) is not None:
                return left > 0
    except (regex.error, RecursionError, TimeoutError):
        pass
    return False


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


@dataclass(frozen=True)
class _Planned:
    """One adapted projection of one layer: its A and B in the file, its rank and scale."""

    lora_a: str
    lora_b: str
    rank: int
    scale: float


def _plan(
    shapes: dict[str, tuple[int, ...]], settings: LoraSettings, shape: LlamaShape, origin: Path
) -> dict[tuple[int, str], _Planned]:
    """PEFT's A and B per layer and projection, checked against the base (the shapes from
    the file's header), with the scale alpha/r (alpha/sqrt(r) for rsLoRA) each gets."""
    patterns = LoraPatterns(settings, origin.parent / "adapter_config.json")
    plan: dict[tuple[int, str], _Planned] = {}
    for (layer, proj), ab in sorted(_pairs(shapes, shape, origin).items()):
        if set(ab) != {"A", "B"}:
            raise ExportError(f"{origin}: layer {layer} {proj} has lora_{next(iter(ab))} only")
        a, b = shapes[ab["A"]], shapes[ab["B"]]
        rank = a[0] if len(a) == 2 else 0
        in_features, out_features = shape.projection_shape(proj)
        if a != (rank, in_features) or b != (out_features, rank):
            raise ExportError(
                f"{origin}: adapter for another base: layer {layer} {proj} has "
                f"A {a}, B {b}; the base expects A (r, {in_features}), B ({out_features}, r)"
            )
        if not 0 < rank <= min(in_features, out_features):
            raise ExportError(
                f"{origin}: layer {layer} {proj} has rank {rank}; over its "
                f"{in_features}x{out_features} projection a rank is 1 to "
                f"{min(in_features, out_features)}"
            )
        module = f"model.layers.{layer}.{'self_attn' if proj[0] in 'qkvo' else 'mlp'}.{proj}"
        expected_rank = patterns.rank(module)
        if rank != expected_rank:
            raise ExportError(
                f"{origin}: layer {layer} {proj} has rank {rank}, "
                f"adapter_config says {expected_rank}"
            )
        alpha = patterns.alpha(module)
        scale = alpha / math.sqrt(rank) if settings.use_rslora else alpha / rank
        plan[(layer, proj)] = _Planned(ab["A"], ab["B"], rank, scale)
    return plan


def _convert(
    raw: dict[str, torch.Tensor], plan: dict[tuple[int, str], _Planned], shape: LlamaShape
) -> tuple[dict[str, torch.Tensor], list[str], int]:
    """The planned A and B, B scaled, zero-padded to one rank in every layer as the programs
    take them."""
    targets = [p for p in PROJECTIONS if any(proj == p for _, proj in plan)]
    max_rank = max(planned.rank for planned in plan.values())
    weights: dict[str, torch.Tensor] = {}
    for layer in range(shape.n_layers):
        for proj in targets:
            in_features, out_features = shape.projection_shape(proj)
            lora_a = torch.zeros(max_rank, in_features)
            lora_b = torch.zeros(out_features, max_rank)
            if (planned := plan.get((layer, proj))) is not None:
                lora_a[: planned.rank] = raw[planned.lora_a].to(torch.float32)
                lora_b[:, : planned.rank] = raw[planned.lora_b].to(torch.float32) * planned.scale
            prefix = f"layers.{layer}.{PROJECTIONS[proj]}"
            weights[f"{prefix}.lora_a.weight"] = lora_a
            weights[f"{prefix}.lora_b.weight"] = lora_b
    return weights, targets, max_rank


def _pairs(
    shapes: dict[str, tuple[int, ...]], shape: LlamaShape, origin: Path
) -> dict[tuple[int, str], dict[str, str]]:
    """{(layer, projection): {"A": its key, "B": its key}} from PEFT's weight names."""
    pairs: dict[tuple[int, str], dict[str, str]] = {}
    if (
        shapes
        and not any(_KEY.match(key) for key in shapes)
        and _why(first := next(iter(shapes))) == _OTHER
    ):
        # Not one weight for a module of the base: an error rather than a warning and a
        # program that answers as the base does (it would hold no LoRA weight at all).
        raise ExportError(
            f"{origin}: none of its {len(shapes)} weights is for a module of the base, "
            f"such as {quoted(first, 80)} ({_OTHER}): an adapter for another model?"
        )
    for key in shapes:
        match = _KEY.match(key)
        if match is None:
            raise ExportError(f"{origin}: unsupported adapter weight {quoted(key)} ({_why(key)})")
        layer = int(match["layer"])
        if layer >= shape.n_layers:
            raise ExportError(
                f"{origin}: adapter for another base: it has layer {layer}, "
                f"the base has {shape.n_layers} layers"
            )
        pairs.setdefault((layer, match["proj"]), {})[match["ab"]] = key
    if not pairs:
        raise ExportError(f"{origin}: no LoRA weights found")
    return pairs


# How long all of one adapter's rank_pattern and alpha_pattern keys may take to match its
# modules; PEFT's own keys (a module name or a short alternation) take microseconds.
PATTERN_SECONDS = 2.0


class LoraPatterns:
    """``rank_pattern`` and ``alpha_pattern`` matched as PEFT matches them (its
    ``get_pattern_key``: the first key, in the file's order, whose regular expression
    matches the end of the module's full name, ``re.match(rf"(.*\\.)?({key})$", name)``),
    but with ``regex``, which takes re's syntax and a time limit: a key is a stranger's
    regular expression, and one like ``(\\w|.)*\\.`` backtracks for ever under ``re``."""

    def __init__(self, settings: LoraSettings, origin: Path) -> None:
        self.settings, self.origin = settings, origin
        self.deadline = time.monotonic() + PATTERN_SECONDS
        self.compiled = {
            key: self._compile(key, what)
            for what, patterns in (
                ("rank", settings.rank_pattern),
                ("alpha", settings.alpha_pattern),
            )
            for key in patterns
        }

    def rank(self, module: str) -> int:
        return self._value(self.settings.rank_pattern, module, self.settings.rank)

    def alpha(self, module: str) -> float:
        return self._value(self.settings.alpha_pattern, module, self.settings.alpha)

    def _compile(self, key: str, what: str) -> regex.Pattern[str]:
        try:
            return regex.compile(rf"(.*\.)?({key})$")
        except (regex.error, RecursionError) as err:
            raise ExportError(
                f"{self.origin}: {what}_pattern key {quoted(key)} is not a regular expression "
                f"({one_line(err)})"
            ) from None

    def _value(self, patterns: dict[str, T], module: str, default: T) -> T:
        for key, value in patterns.items():
            left = self.deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                if self.compiled[key].match(module, timeout=left) is not None:
                    return value
            except TimeoutError:
                raise ExportError(
                    f"{self.origin}: matching its rank_pattern and alpha_pattern keys took "
                    f"over {PATTERN_SECONDS:g} s (at {quoted(key)}); simplify them"
                ) from None
        return default


def _why(key: str) -> str:
    if "lora_magnitude_vector" in key:
        return "DoRA is not supported"
    if "modules_to_save" in key:
        return "modules_to_save is not supported"
    if ".bias" in key:
        return "LoRA bias is not supported"
    if "embed_tokens" in key or "lm_head" in key or "lora_embedding" in key:
        return "only q,k,v,o,gate,up,down projections can be adapted"
    return _OTHER


_OTHER = "not a LoRA weight of a Llama q,k,v,o,gate,up,down projection"
