"""Read a base model of a family ExecuTorch's Llama ``Transformer`` computes: Llama 2/3.x
(SmolLM2 is one), Qwen2/Qwen2.5 and Qwen3, from a Hugging Face directory or a GGUF file.

The result is the model's shape, its rotary frequencies, its weights under ExecuTorch's
Llama names, and the tokenizer assets (tokenizer.json, chat template, bos and stop ids)
lora-tui needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import math
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open

from exporter.errors import ExportError
from lora_tui.format import (
    END_OF_TEXT_TOKENS,
    END_OF_TURN_TOKENS,
    GENERATION_CONFIG_FILE,
    MODEL_CONFIG_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    chat_template_of,
    one_line,
    projection_features,
    quoted,
    read_json_file,
    special_ids,
)

T = TypeVar("T")

# ExecuTorch's Llama module names for each PEFT/Hugging Face projection.
PROJECTIONS: dict[str, str] = {
    "q_proj": "attention.wq",
    "k_proj": "attention.wk",
    "v_proj": "attention.wv",
    "o_proj": "attention.wo",
    "gate_proj": "feed_forward.w1",
    "down_proj": "feed_forward.w2",
    "up_proj": "feed_forward.w3",
}
_HF_LAYER_NAMES: dict[str, str] = {
    **{f"self_attn.{p}": m for p, m in PROJECTIONS.items() if p[0] in "qkvo"},
    **{f"mlp.{p}": m for p, m in PROJECTIONS.items() if p[0] not in "qkvo"},
    "input_layernorm": "attention_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_norm": "attention.q_norm_fn",  # Qwen3
    "self_attn.k_norm": "attention.k_norm_fn",
}

# Hugging Face model types whose math ExecuTorch's Transformer has, and what each adds to
# Llama: Qwen2 puts a bias on q, k and v; Qwen3 RMS-normalises q and k per head before RoPE.
FAMILIES: dict[str, str] = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}
# Rotary scalings whose tables are fixed once the config is known, computed by transformers.
# "dynamic" rescales with the sequence length and "longrope" switches tables at a length, so
# neither is one table; they are refused.
ROPE_TYPES = ("default", "linear", "llama3", "yarn")


@dataclass(frozen=True)
class LlamaShape:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_dim: int
    vocab_size: int
    norm_eps: float
    rope_theta: float
    family: str = "llama"
    qkv_bias: bool = False
    qk_norm: bool = False
    rope_type: str = "default"

    def projection_shape(self, projection: str) -> tuple[int, int]:
        """(in_features, out_features) of a projection, for checking an adapter against it."""
        return projection_features(self.as_dict(), projection)

    def as_dict(self) -> dict[str, Any]:
        # Family fields at Llama's defaults are left out, so a Llama base keeps the
        # fingerprint (and its folders stay extendable) it had before other families came.
        extras = {"family": "llama", "qkv_bias": False, "qk_norm": False, "rope_type": "default"}
        return {k: v for k, v in asdict(self).items() if extras.get(k, object()) != v}


@dataclass(frozen=True)
class Rope:
    """The rotary frequencies, as transformers computes them for the model's rope type."""

    inv_freq: torch.Tensor  # [head_dim / 2], fp32
    attention_scaling: float = 1.0  # cos and sin are multiplied by it (yarn)

    def tables(self, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions 0..positions-1, [positions, head_dim], as transformers'
        rotary embedding forms them (rotate-half layout)."""
        angles = torch.arange(positions, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        emb = torch.cat((angles, angles), dim=-1)
        return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling


@dataclass
class TokenizerAssets:
    tokenizer_json: bytes
    chat_template: str | None
    bos_id: int | None
    stop_ids: list[int]
    extra_files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class BaseModel:
    source: Path
    shape: LlamaShape
    rope: Rope
    weights: dict[str, torch.Tensor]  # ExecuTorch names, fp32
    tokenizer: TokenizerAssets

    def fingerprint(self) -> str:
        """A hash of the shape, any scaled rotary frequencies and every weight's bytes: the
        base's identity in the manifest."""
        digest = hashlib.sha256(json.dumps(self.shape.as_dict(), sort_keys=True).encode())
        if self.shape.rope_type != "default":
            digest.update(f"rope:{self.rope.attention_scaling!r}".encode())
            digest.update(self.rope.inv_freq.numpy().tobytes())
        for name in sorted(self.weights):
            tensor = self.weights[name].contiguous()
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()


def load_base(path: Path) -> BaseModel:
    if not path.exists():
        raise ExportError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _load_gguf(path)
    if path.is_dir():
        return _load_hf_dir(path)
    raise ExportError(f"{path}: not a Hugging Face model directory or a .gguf file")


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file, turning a damaged file into one clear line."""
    with _safetensors(path) as reader:
        return {key: reader.get_tensor(key) for key in reader.keys()}


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape from a safetensors file's header, reading no tensor: sizes are
    checked against these before anything of that size is read or built."""
    with _safetensors(path) as reader:
        return {key: tuple(reader.get_slice(key).get_shape()) for key in reader.keys()}


@contextlib.contextmanager
def _safetensors(path: Path) -> Iterator[Any]:
    try:
        with safe_open(str(path), framework="pt") as reader:
            yield reader
    except FileNotFoundError:
        raise ExportError(f"{path}: missing") from None
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ExportError(f"{path}: corrupt or truncated safetensors file ({err})") from None


def shape_from_config(config: dict[str, Any], origin: Path) -> LlamaShape:
    """The model's shape from its ``config.json``, every size a positive integer that fits
    the others: a config is a stranger's file, and everything built later is sized by it."""
    if not isinstance(config, dict):
        raise ExportError(f"{origin}: not a JSON object")
    family = _family(config, origin)
    refusals = {
        "mlp_bias": "mlp_bias=true",
        "attention_bias": "attention_bias=true (a bias on the output projection too)",
        "use_sliding_window": "sliding-window attention",
    }
    for flag, what in refusals.items():
        if config.get(flag):
            raise ExportError(f"{origin}: {what} is not supported by ExecuTorch's Transformer")
    if config.get("hidden_act", "silu") != "silu":
        raise ExportError(f"{origin}: hidden_act {quoted(config['hidden_act'])} is not supported")
    rope = _rope_parameters(config)
    rope_type = rope.get("rope_type", rope.get("type")) or "default"
    if rope_type not in ROPE_TYPES:
        raise ExportError(
            f"{origin}: rope scaling {quoted(rope_type)} is not supported "
            f"(supported: {', '.join(ROPE_TYPES)})"
        )
    partial = rope.get("partial_rotary_factor") or config.get("partial_rotary_factor") or 1
    if _number(partial, "partial_rotary_factor", origin) != 1:
        raise ExportError(f"{origin}: partial rotary embeddings are not supported")
    sizes = _sizes(config, family, origin)
    return LlamaShape(
        **sizes,
        norm_eps=_number(config.get("rms_norm_eps", 1e-5), "rms_norm_eps", origin),
        rope_theta=_number(
            rope.get("rope_theta") or config.get("rope_theta") or 10000.0, "rope_theta", origin
        ),
        family=family,
        qkv_bias=family == "qwen2",
        qk_norm=family == "qwen3",
        rope_type=rope_type,
    )


def _sizes(config: dict[str, Any], family: str, origin: Path) -> dict[str, int]:
    """The integer sizes, checked against each other: heads that split the width (unless
    head_dim is given, as Qwen3's is), kv heads that split the heads, an even head_dim."""

    def size(key: str, default: int | None = None) -> int:
        value = config.get(key)
        value = default if value is None else value
        if value is None:
            raise ExportError(f"{origin}: incomplete {family} config (no '{key}')")
        return _positive_int(value, key, origin)

    dim, n_heads = size("hidden_size"), size("num_attention_heads")
    n_kv_heads = size("num_key_value_heads", n_heads)
    if config.get("head_dim") is None and dim % n_heads:
        raise ExportError(
            f"{origin}: hidden_size {dim} is not a multiple of num_attention_heads {n_heads}"
        )
    head_dim = size("head_dim", dim // n_heads)
    if n_heads % n_kv_heads:
        raise ExportError(
            f"{origin}: num_attention_heads {n_heads} is not a multiple of "
            f"num_key_value_heads {n_kv_heads}"
        )
    if head_dim % 2:
        raise ExportError(f"{origin}: head_dim {head_dim} is odd (rotary embeddings need pairs)")
    return {
        "dim": dim,
        "n_layers": size("num_hidden_layers"),
        "n_heads": n_heads,
        "n_kv_heads": n_kv_heads,
        "head_dim": head_dim,
        "hidden_dim": size("intermediate_size"),
        "vocab_size": size("vocab_size"),
    }


def _positive_int(value: Any, key: str, origin: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ExportError(f"{origin}: {key} must be a positive integer, not {quoted(value)}")
    return value


def _number(value: Any, key: str, origin: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ExportError(f"{origin}: {key} must be a finite number, not {quoted(value)}")
    return float(value)


def _family(config: dict[str, Any], origin: Path) -> str:
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type in FAMILIES:
        return model_type
    architectures = config.get("architectures")
    listed = architectures if isinstance(architectures, list) else []
    names = [a for a in listed if isinstance(a, str)]
    for family, architecture in FAMILIES.items():
        if architecture in names:
            return family
    kind = model_type if isinstance(model_type, str) else ", ".join(names)
    raise ExportError(
        f"{origin}: model_type {quoted(kind or 'unknown')} is not supported "
        f"(supported: {', '.join(FAMILIES)}: Llama 2/3.x, SmolLM2, Qwen2/2.5, Qwen3)"
    )


def _rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    # transformers 5 writes rope_parameters; older configs (every Llama 3 on the Hub) write
    # rope_scaling beside rope_theta.
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return rope if isinstance(rope, dict) else {}


def rope_from_config(config: dict[str, Any], origin: Path) -> Rope:
    """The rotary frequencies transformers' own rotary embedding computes for ``config``."""
    from transformers import AutoConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    try:
        hf_config = AutoConfig.for_model(**config)
        # Llama's, Qwen2's and Qwen3's rotary embeddings are the same code; all three read
        # rope_parameters (type, theta, factors) and head_dim from the config.
        rotary = LlamaRotaryEmbedding(hf_config)
    except Exception as err:  # transformers validates rope parameters with assorted errors
        raise ExportError(f"{origin}: invalid rope parameters ({one_line(err)})") from None
    return Rope(rotary.inv_freq.to(torch.float32).clone(), float(rotary.attention_scaling))


def to_executorch_names(
    hf_weights: dict[str, torch.Tensor], shape: LlamaShape, origin: Path
) -> dict[str, torch.Tensor]:
    """Rename Hugging Face Llama weights to ExecuTorch's names and check every shape.

    With ``use_hf_rope`` the q/k weights keep Hugging Face's layout, so only names change.
    """
    renamed = executorch_names(hf_weights, shape, origin)
    check_weight_shapes({name: tuple(t.shape) for name, t in renamed.items()}, shape, origin)
    # Tied embeddings are one tensor under two names; converting each name on its own would
    # make two fp32 copies of the largest weight (1 GB for Llama 3.2 1B's bf16 table).
    as_fp32: dict[int, torch.Tensor] = {}
    for tensor in renamed.values():
        as_fp32.setdefault(id(tensor), tensor.to(torch.float32).contiguous())
    return {name: as_fp32[id(renamed[name])] for name in _expected_shapes(shape)}


def executorch_names(weights: dict[str, T], shape: LlamaShape, origin: Path) -> dict[str, T]:
    """Hugging Face weight names (of tensors, or of their shapes) as ExecuTorch's; a tied
    output weight is the embedding's."""
    layer_key = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
    renamed: dict[str, T] = {}
    for key, value in weights.items():
        if key == "model.embed_tokens.weight":
            renamed["tok_embeddings.weight"] = value
        elif key == "model.norm.weight":
            renamed["norm.weight"] = value
        elif key == "lm_head.weight":
            renamed["output.weight"] = value
        elif (match := layer_key.match(key)) and match.group(2) in _HF_LAYER_NAMES:
            layer, module, kind = match.groups()
            renamed[f"layers.{layer}.{_HF_LAYER_NAMES[module]}.{kind}"] = value
        elif key.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from the config
        else:
            raise ExportError(
                f"{origin}: unexpected weight {quoted(key)} for a {shape.family} model"
            )
    if "output.weight" not in renamed and "tok_embeddings.weight" in renamed:
        renamed["output.weight"] = renamed["tok_embeddings.weight"]  # tied embeddings
    return renamed


def check_weight_shapes(
    shapes: dict[str, tuple[int, ...]], shape: LlamaShape, origin: Path
) -> None:
    """Every weight the config implies is there with that shape. The layers are counted
    first: a config's layer count sizes what is built, so it must be what the weights hold."""
    layers = {name.split(".")[1] for name in shapes if name.startswith("layers.")}
    if len(layers) != shape.n_layers:
        raise ExportError(
            f"{origin}: the config says {shape.n_layers} layers, the weights hold {len(layers)}"
        )
    expected = _expected_shapes(shape)
    missing = sorted(set(expected) - set(shapes))
    if missing:
        raise ExportError(f"{origin}: missing weight '{missing[0]}' ({len(missing)} missing)")
    for name, want in expected.items():
        if shapes[name] != want:
            raise ExportError(
                f"{origin}: weight '{name}' has shape {shapes[name]}, config implies {want}"
            )


def _expected_shapes(shape: LlamaShape) -> dict[str, tuple[int, ...]]:
    expected: dict[str, tuple[int, ...]] = {
        "tok_embeddings.weight": (shape.vocab_size, shape.dim),
        "norm.weight": (shape.dim,),
        "output.weight": (shape.vocab_size, shape.dim),
    }
    for layer in range(shape.n_layers):
        prefix = f"layers.{layer}."
        expected[prefix + "attention_norm.weight"] = (shape.dim,)
        expected[prefix + "ffn_norm.weight"] = (shape.dim,)
        for projection, module in PROJECTIONS.items():
            in_features, out_features = shape.projection_shape(projection)
            expected[f"{prefix}{module}.weight"] = (out_features, in_features)
            if shape.qkv_bias and projection in ("q_proj", "k_proj", "v_proj"):
                expected[f"{prefix}{module}.bias"] = (out_features,)
        if shape.qk_norm:
            expected[prefix + "attention.q_norm_fn.weight"] = (shape.head_dim,)
            expected[prefix + "attention.k_norm_fn.weight"] = (shape.head_dim,)
    return expected


def _load_hf_dir(path: Path) -> BaseModel:
    config = read_json_file(path / MODEL_CONFIG_FILE)
    shape = shape_from_config(config, path / "config.json")
    weight_files = sorted(path.glob("*.safetensors"))
    if not weight_files:
        raise ExportError(f"{path}: no *.safetensors weight files")
    headers: dict[str, tuple[int, ...]] = {}
    for weight_file in weight_files:
        headers.update(safetensors_shapes(weight_file))
    check_weight_shapes(executorch_names(headers, shape, path), shape, path)  # nothing read yet
    hf_weights: dict[str, torch.Tensor] = {}
    for weight_file in weight_files:
        hf_weights.update(read_safetensors(weight_file))
    weights = to_executorch_names(hf_weights, shape, path)
    rope = rope_from_config(config, path / "config.json")
    tokenizer_json = path / TOKENIZER_FILE
    if not tokenizer_json.is_file():
        raise ExportError(f"{tokenizer_json}: missing (lora-tui needs a Hugging Face tokenizer)")
    tokenizer_config = read_json_file(path / TOKENIZER_CONFIG_FILE)
    generation_config = path / GENERATION_CONFIG_FILE
    tokenizer = make_tokenizer_assets(
        tokenizer_json.read_bytes(),
        chat_template=chat_template_of(tokenizer_config, path),
        configs=[config, read_json_file(generation_config) if generation_config.is_file() else {}],
        special_tokens=tokenizer_config,
        origin=tokenizer_json,
    )
    tokenizer.extra_files[TOKENIZER_CONFIG_FILE] = (path / TOKENIZER_CONFIG_FILE).read_bytes()
    return BaseModel(path, shape, rope, weights, tokenizer)


def make_tokenizer_assets(
    tokenizer_json: bytes,
    *,
    chat_template: str | None,
    configs: list[dict[str, Any]],
    special_tokens: dict[str, Any],
    origin: Path,
) -> TokenizerAssets:
    """Collect bos and stop ids from configs, special tokens and the chat template."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
    except Exception as err:  # tokenizers raises a bare Exception on malformed input
        raise ExportError(f"{origin}: not a valid tokenizer.json ({err})") from None

    bos_id, stop_ids = special_ids(tokenizer, chat_template, configs, special_tokens)
    if not stop_ids:
        raise ExportError(f"{origin}: no end-of-sequence token found in the model's configs")
    return TokenizerAssets(tokenizer_json, chat_template, bos_id, stop_ids)


@contextlib.contextmanager
def _reuse_gguf_reader(gguf: Any, path: Path, reader: Any) -> Iterator[None]:
    """Hand transformers the reader already open on ``path``.

    transformers parses the whole GGUF for the config, again for the weights and again for
    the tokenizer; each parse reads every one of SmolLM2's 49k vocabulary strings in Python
    (about 6 s). The reader is read-only, so one parse can serve them all.
    """
    original, ours = gguf.GGUFReader, path.resolve()

    def open_reader(source: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(source).resolve() == ours and not args and not kwargs:
            return reader
        return original(source, *args, **kwargs)

    gguf.GGUFReader = open_reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


@contextlib.contextmanager
def _one_tensor_name_map(gguf: Any) -> Iterator[None]:
    """Build gguf's tensor-name map once per architecture and depth, not once per module.

    transformers maps GGUF names to its own by walking every submodule (397 for SmolLM2),
    and each visit builds ``gguf.get_tensor_name_map`` afresh: 6 of the 24 s reading the
    demo's base took here (cProfile). It only reads the map, so one can serve every visit.
    """
    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.cache(original)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = original


@dataclass
class _GgufHeader:
    """What the GGUF's metadata says that transformers does not read."""

    reader: Any
    architecture: str
    head_dim_override: dict[str, int]  # Qwen3's head_dim, which transformers would assume
    scaling: str
    scaling_factor: float | None
    rope_factors: torch.Tensor | None  # Llama 3's per-frequency divisors (rope_freqs)


def _read_gguf_header(path: Path) -> _GgufHeader:
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))
        architecture = _gguf_value(reader, "general.architecture") or "unknown"
        scaling = _gguf_value(reader, f"{architecture}.rope.scaling.type") or "none"
        scaling_factor = _gguf_value(reader, f"{architecture}.rope.scaling.factor")
        rope_factors = next(
            (
                torch.from_numpy(t.data.copy())
                for t in reader.tensors
                if t.name == "rope_freqs.weight"
            ),
            None,
        )
    except Exception as err:  # gguf raises assorted errors on damaged files
        raise ExportError(f"{path}: corrupt or truncated GGUF file ({err})") from None
    if not isinstance(architecture, str) or architecture not in FAMILIES:
        raise ExportError(
            f"{path}: GGUF architecture {quoted(architecture)} is not supported "
            f"(supported: {', '.join(FAMILIES)})"
        )
    if scaling not in ("none", "linear"):
        raise ExportError(f"{path}: rope scaling {quoted(scaling)} in a GGUF is not supported")
    if scaling_factor is not None:
        _number(scaling_factor, f"{architecture}.rope.scaling.factor", path)
    override = _gguf_sizes(reader, architecture, path)
    return _GgufHeader(reader, architecture, override, scaling, scaling_factor, rope_factors)


def _gguf_sizes(reader: Any, architecture: str, path: Path) -> dict[str, int]:
    """Check the sizes transformers builds the model from against the tensors the file
    holds, before it builds anything (it would build a ``block_count`` of 200000000).
    Returns Qwen3's explicit head_dim, which transformers does not map and would assume."""

    def size(key: str, default: int | None = None) -> int:
        value = _gguf_value(reader, f"{architecture}.{key}")
        value = default if value is None else value
        if value is None:
            raise ExportError(f"{path}: no {architecture}.{key} in the GGUF's metadata")
        return _positive_int(value, f"{architecture}.{key}", path)

    width, heads = size("embedding_length"), size("attention.head_count")
    kv_heads = size("attention.head_count_kv", heads)
    explicit = _gguf_value(reader, f"{architecture}.attention.key_length") is not None
    if not explicit and width % heads:
        raise ExportError(f"{path}: embedding_length {width} is not a multiple of {heads} heads")
    head_dim = size("attention.key_length", width // heads)
    if heads % kv_heads or head_dim % 2:
        raise ExportError(f"{path}: {heads} heads, {kv_heads} kv heads of {head_dim} do not fit")
    dims = {t.name: tuple(int(d) for d in reversed(t.shape)) for t in reader.tensors}
    blocks = {name.split(".")[1] for name in dims if name.startswith("blk.")}
    if size("block_count") != len(blocks):
        raise ExportError(
            f"{path}: block_count says {size('block_count')} layers, the file holds {len(blocks)}"
        )
    expected = {
        "blk.0.attn_q.weight": (heads * head_dim, width),
        "blk.0.attn_k.weight": (kv_heads * head_dim, width),
        "blk.0.ffn_up.weight": (size("feed_forward_length"), width),
    }
    for name, want in expected.items():
        if dims.get(name) != want:
            raise ExportError(
                f"{path}: tensor {name} is {dims.get(name)}, the metadata says {want}"
            )
    if dims.get("token_embd.weight", (0, 0))[1:] != (width,):
        raise ExportError(f"{path}: token_embd.weight is not {width} wide")
    return {"head_dim": head_dim} if head_dim * heads != width else {}


def _load_gguf(path: Path) -> BaseModel:
    """Dequantize a GGUF base to fp32 with transformers, which also undoes llama.cpp's q/k
    permutation of Llama (Qwen's are not permuted) and rebuilds the tokenizer and chat
    template from the GGUF metadata. Rotary scaling is read here: transformers skips it."""
    import gguf

    header = _read_gguf_header(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    quiet = io.StringIO()
    try:
        with (
            contextlib.redirect_stdout(quiet),
            contextlib.redirect_stderr(quiet),
            _reuse_gguf_reader(gguf, path, header.reader),
            _one_tensor_name_map(gguf),
        ):
            model = AutoModelForCausalLM.from_pretrained(
                str(path.parent),
                gguf_file=path.name,
                dtype=torch.float32,
                **header.head_dim_override,
            )
            hf_tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as err:
        raise ExportError(f"{path}: could not read the GGUF model ({one_line(err)})") from None
    config = model.config.to_dict()
    shape, rope = _gguf_rope(
        header, shape_from_config(config, path), rope_from_config(config, path), path
    )
    weights = to_executorch_names(dict(model.state_dict()), shape, path)
    tokenizer = _gguf_tokenizer(hf_tokenizer, [config, model.generation_config.to_dict()], path)
    return BaseModel(path, shape, rope, weights, tokenizer)


def _gguf_rope(
    header: _GgufHeader, shape: LlamaShape, rope: Rope, path: Path
) -> tuple[LlamaShape, Rope]:
    """llama.cpp stores Llama 3's scaling as per-frequency divisors (rope_freqs) and linear
    scaling as one factor; both divide the plain frequencies, as llama.cpp's RoPE does."""
    if header.rope_factors is not None:
        if header.rope_factors.shape != rope.inv_freq.shape:
            raise ExportError(f"{path}: rope_freqs has {header.rope_factors.numel()} factors")
        rope = Rope(rope.inv_freq / header.rope_factors.to(torch.float32))
        return dataclasses.replace(shape, rope_type="llama3"), rope
    if header.scaling == "linear" and header.scaling_factor:
        rope = Rope(rope.inv_freq / float(header.scaling_factor))
        return dataclasses.replace(shape, rope_type="linear"), rope
    return shape, rope


def _gguf_tokenizer(
    hf_tokenizer: Any, configs: list[dict[str, Any]], path: Path
) -> TokenizerAssets:
    with tempfile.TemporaryDirectory() as scratch:
        hf_tokenizer.save_pretrained(scratch)
        tokenizer_json = (Path(scratch) / TOKENIZER_FILE).read_bytes()
        tokenizer_config_bytes = (Path(scratch) / TOKENIZER_CONFIG_FILE).read_bytes()
    # A GGUF keeps one eos id (Llama 3's <|eot_id|>) where generation_config.json listed
    # several (<|eom_id|>, <|end_of_text|>); like llama.cpp, which ends generation at any
    # end-of-turn or end-of-document token in the vocabulary, stop at all of them.
    vocabulary = hf_tokenizer.get_vocab()
    end_tokens = (*END_OF_TURN_TOKENS, *END_OF_TEXT_TOKENS)
    ends = {"eos_token_id": [vocabulary[t] for t in end_tokens if t in vocabulary]}
    tokenizer = make_tokenizer_assets(
        tokenizer_json,
        chat_template=hf_tokenizer.chat_template,
        configs=[*configs, ends],
        special_tokens={"eos_token": hf_tokenizer.eos_token, "bos_token": hf_tokenizer.bos_token},
        origin=path,
    )
    tokenizer.extra_files[TOKENIZER_CONFIG_FILE] = tokenizer_config_bytes
    return tokenizer


def _gguf_value(reader: Any, key: str) -> Any:
    """A metadata value of a GGUF (a number or a string), or None."""
    field = reader.fields.get(key)
    return field.contents() if field is not None else None
