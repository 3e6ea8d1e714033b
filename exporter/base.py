"""Read a Llama-architecture base model: a Hugging Face directory or a GGUF file.

The result is the model's shape, its weights under ExecuTorch's Llama names, and the
tokenizer assets (tokenizer.json, chat template, bos and stop ids) lora-tui needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from exporter.errors import ExportError
from lora_tui.artifact_format import (
    GENERATION_CONFIG_FILE,
    MODEL_CONFIG_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    chat_template_of,
    projection_features,
    read_json_file,
    special_ids,
)

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
}


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

    def projection_shape(self, projection: str) -> tuple[int, int]:
        """(in_features, out_features) of a projection, for checking an adapter against it."""
        return projection_features(self.as_dict(), projection)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    weights: dict[str, torch.Tensor]  # ExecuTorch names, fp32
    tokenizer: TokenizerAssets

    def fingerprint(self) -> str:
        """A hash of the shape and every weight's bytes: the base's identity in the manifest."""
        digest = hashlib.sha256(json.dumps(self.shape.as_dict(), sort_keys=True).encode())
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
    try:
        with safe_open(str(path), framework="pt") as reader:
            return {key: reader.get_tensor(key) for key in reader.keys()}
    except FileNotFoundError:
        raise ExportError(f"{path}: missing") from None
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ExportError(f"{path}: corrupt or truncated safetensors file ({err})") from None


def shape_from_config(config: dict[str, Any], origin: Path) -> LlamaShape:
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if model_type != "llama" and "LlamaForCausalLM" not in architectures:
        kind = model_type or ", ".join(architectures) or "unknown"
        raise ExportError(f"{origin}: not a Llama-architecture model (model_type '{kind}')")
    for flag in ("attention_bias", "mlp_bias"):
        if config.get(flag):
            raise ExportError(f"{origin}: {flag}=true is not supported by the Llama export")
    if config.get("hidden_act", "silu") != "silu":
        raise ExportError(f"{origin}: hidden_act '{config['hidden_act']}' is not supported")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in (None, "default"):
        raise ExportError(f"{origin}: rope scaling '{rope_type}' is not supported")
    try:
        n_heads = int(config["num_attention_heads"])
        dim = int(config["hidden_size"])
        return LlamaShape(
            dim=dim,
            n_layers=int(config["num_hidden_layers"]),
            n_heads=n_heads,
            n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
            head_dim=int(config.get("head_dim") or dim // n_heads),
            hidden_dim=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            norm_eps=float(config.get("rms_norm_eps", 1e-5)),
            rope_theta=float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ExportError(f"{origin}: incomplete Llama config ({err})") from None


def to_executorch_names(
    hf_weights: dict[str, torch.Tensor], shape: LlamaShape, origin: Path
) -> dict[str, torch.Tensor]:
    """Rename Hugging Face Llama weights to ExecuTorch's names and check every shape.

    With ``use_hf_rope`` the q/k weights keep Hugging Face's layout, so only names change.
    """
    layer_key = re.compile(r"^model\.layers\.(\d+)\.(.+)\.weight$")
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in hf_weights.items():
        if key == "model.embed_tokens.weight":
            renamed["tok_embeddings.weight"] = tensor
        elif key == "model.norm.weight":
            renamed["norm.weight"] = tensor
        elif key == "lm_head.weight":
            renamed["output.weight"] = tensor
        elif (match := layer_key.match(key)) and match.group(2) in _HF_LAYER_NAMES:
            renamed[f"layers.{match.group(1)}.{_HF_LAYER_NAMES[match.group(2)]}.weight"] = tensor
        elif key.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from rope_theta
        else:
            raise ExportError(f"{origin}: unexpected weight '{key}' for a Llama model")
    if "output.weight" not in renamed and "tok_embeddings.weight" in renamed:
        renamed["output.weight"] = renamed["tok_embeddings.weight"]  # tied embeddings

    expected = _expected_shapes(shape)
    missing = sorted(set(expected) - set(renamed))
    if missing:
        raise ExportError(f"{origin}: missing weight '{missing[0]}' ({len(missing)} missing)")
    for name, want in expected.items():
        got = tuple(renamed[name].shape)
        if got != want:
            raise ExportError(f"{origin}: weight '{name}' has shape {got}, config implies {want}")
    return {name: renamed[name].to(torch.float32).contiguous() for name in expected}


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
    return expected


def _load_hf_dir(path: Path) -> BaseModel:
    config = read_json_file(path / MODEL_CONFIG_FILE)
    shape = shape_from_config(config, path / "config.json")
    weight_files = sorted(path.glob("*.safetensors"))
    if not weight_files:
        raise ExportError(f"{path}: no *.safetensors weight files")
    hf_weights: dict[str, torch.Tensor] = {}
    for weight_file in weight_files:
        hf_weights.update(read_safetensors(weight_file))
    weights = to_executorch_names(hf_weights, shape, path)
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
    return BaseModel(path, shape, weights, tokenizer)


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


def _load_gguf(path: Path) -> BaseModel:
    """Dequantize a GGUF Llama to fp32 with transformers, which also undoes llama.cpp's
    q/k permutation and rebuilds the tokenizer and chat template from the GGUF metadata."""
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))
        arch_field = reader.fields.get("general.architecture")
        architecture = bytes(arch_field.parts[-1]).decode() if arch_field else "unknown"
    except Exception as err:  # gguf raises assorted errors on damaged files
        raise ExportError(f"{path}: corrupt or truncated GGUF file ({err})") from None
    if architecture != "llama":
        raise ExportError(
            f"{path}: not a Llama-architecture model (GGUF architecture '{architecture}')"
        )

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    quiet = io.StringIO()
    try:
        with (
            contextlib.redirect_stdout(quiet),
            contextlib.redirect_stderr(quiet),
            _reuse_gguf_reader(gguf, path, reader),
        ):
            model = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32
            )
            hf_tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as err:
        raise ExportError(f"{path}: could not read the GGUF model ({err})") from None

    config = model.config.to_dict()
    shape = shape_from_config(config, path)
    weights = to_executorch_names(dict(model.state_dict()), shape, path)
    with tempfile.TemporaryDirectory() as scratch:
        hf_tokenizer.save_pretrained(scratch)
        tokenizer_json = (Path(scratch) / TOKENIZER_FILE).read_bytes()
        tokenizer_config_bytes = (Path(scratch) / TOKENIZER_CONFIG_FILE).read_bytes()
    tokenizer = make_tokenizer_assets(
        tokenizer_json,
        chat_template=hf_tokenizer.chat_template,
        configs=[config, model.generation_config.to_dict()],
        special_tokens={"eos_token": hf_tokenizer.eos_token, "bos_token": hf_tokenizer.bos_token},
        origin=path,
    )
    tokenizer.extra_files[TOKENIZER_CONFIG_FILE] = tokenizer_config_bytes
    return BaseModel(path, shape, weights, tokenizer)
