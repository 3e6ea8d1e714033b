"""A base's shape is checked before anything is built from it (issue 42): sizes that are not
positive integers, heads that do not split the width, and layer counts the weights do not
hold are one line each, read from config.json or a GGUF's metadata and the tensors'
headers, before a tensor is read or a model built."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import exporter.base
from exporter.base import load_base, shape_from_config
from exporter.errors import ExportError

# A one-layer Llama, as small as one can be: width 8 in 2 heads of 4, 1 kv head.
CONFIG = {
    "model_type": "llama",
    "hidden_size": 8,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "num_hidden_layers": 1,
    "intermediate_size": 16,
    "vocab_size": 32,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
}


def write_base(folder: Path, **changes: object) -> Path:
    """config.json (with ``changes``) beside weights of CONFIG's shape."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**CONFIG, **changes}))
    layer = "model.layers.0."
    shapes = {
        "model.embed_tokens.weight": (32, 8),
        "model.norm.weight": (8,),
        layer + "input_layernorm.weight": (8,),
        layer + "post_attention_layernorm.weight": (8,),
        layer + "self_attn.q_proj.weight": (8, 8),
        layer + "self_attn.k_proj.weight": (4, 8),
        layer + "self_attn.v_proj.weight": (4, 8),
        layer + "self_attn.o_proj.weight": (8, 8),
        layer + "mlp.gate_proj.weight": (16, 8),
        layer + "mlp.up_proj.weight": (16, 8),
        layer + "mlp.down_proj.weight": (8, 16),
    }
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, folder / "model.safetensors")
    return folder


@pytest.fixture
def no_tensor_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check here must come from the headers: reading a tensor fails the test."""

    def refuse(path: Path) -> None:
        raise AssertionError(f"read {path} before the shapes were checked")

    monkeypatch.setattr(exporter.base, "read_safetensors", refuse)


def one_line_refusal(path: Path, *needles: str) -> str:
    with pytest.raises(ExportError) as raised:
        load_base(path)
    message = str(raised.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.usefixtures("no_tensor_read")
@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        # Spun for minutes, then ran out of memory.
        ({"num_hidden_layers": 200000000}, ["says 200000000 layers", "hold 1"]),
        # A ZeroDivisionError traceback.
        ({"num_attention_heads": 0}, ["num_attention_heads must be a positive integer", "0"]),
        ({"num_attention_heads": 3}, ["hidden_size 8 is not a multiple of num_attention_heads 3"]),
        ({"num_key_value_heads": 3, "head_dim": 4}, ["not a multiple of num_key_value_heads 3"]),
        ({"num_key_value_heads": 0}, ["num_key_value_heads must be a positive integer"]),
        ({"hidden_size": "8"}, ["hidden_size must be a positive integer, not '8'"]),
        ({"num_hidden_layers": True}, ["num_hidden_layers must be a positive integer"]),
        ({"intermediate_size": -16}, ["intermediate_size must be a positive integer"]),
        ({"head_dim": 3, "num_attention_heads": 1}, ["head_dim 3 is odd"]),
        ({"rope_theta": float("nan")}, ["rope_theta must be a finite number"]),
        ({"rms_norm_eps": "tiny"}, ["rms_norm_eps must be a finite number, not 'tiny'"]),
        ({"partial_rotary_factor": "half"}, ["partial_rotary_factor must be a finite number"]),
        ({"vocab_size": 64}, ["'tok_embeddings.weight' has shape (32, 8)", "(64, 8)"]),
        ({"hidden_size": 16, "head_dim": 4}, ["has shape (32, 8)", "(32, 16)"]),
        ({"architectures": 7, "model_type": None}, ["model_type 'unknown' is not supported"]),
    ],
)
def test_a_config_that_does_not_fit_is_one_line(
    tmp_path: Path, changes: dict, needles: list[str]
) -> None:
    one_line_refusal(write_base(tmp_path / "base", **changes), "config", *needles)


def test_qwen3s_explicit_head_dim_need_not_split_the_width() -> None:
    config = {**CONFIG, "model_type": "qwen3", "num_attention_heads": 3, "head_dim": 4}
    shape = shape_from_config(config, Path("config.json"))
    assert (shape.n_heads, shape.head_dim, shape.dim) == (3, 4, 8)
    assert shape.projection_shape("q_proj") == (8, 12)


def write_gguf(path: Path, **metadata: int) -> Path:
    """A llama GGUF of CONFIG's shape (one block), its metadata overridden."""
    import numpy as np
    from gguf import GGUFWriter

    values = {
        "block_count": 1,
        "embedding_length": 8,
        "feed_forward_length": 16,
        "head_count": 2,
        "head_count_kv": 1,
        **metadata,
    }
    writer = GGUFWriter(str(path), "llama")
    writer.add_block_count(values["block_count"])
    writer.add_embedding_length(values["embedding_length"])
    writer.add_feed_forward_length(values["feed_forward_length"])
    writer.add_head_count(values["head_count"])
    writer.add_head_count_kv(values["head_count_kv"])
    tensors = {
        "token_embd.weight": (32, 8),
        "blk.0.attn_q.weight": (8, 8),
        "blk.0.attn_k.weight": (4, 8),
        "blk.0.ffn_up.weight": (16, 8),
    }
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        # transformers would build every one of them.
        ({"block_count": 200000000}, "block_count says 200000000 layers, the file holds 1"),
        ({"head_count": 0}, "llama.attention.head_count must be a positive integer, not 0"),
        ({"head_count": 3}, "embedding_length 8 is not a multiple of 3 heads"),
        ({"head_count_kv": 3}, "2 heads, 3 kv heads of 4 do not fit"),
        ({"embedding_length": 800000}, "blk.0.attn_q.weight is (8, 8)"),
        ({"feed_forward_length": 160000}, "blk.0.ffn_up.weight is (16, 8)"),
    ],
)
def test_gguf_metadata_that_does_not_fit_its_tensors_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metadata: dict, needle: str
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # it must not build the model
    one_line_refusal(write_gguf(tmp_path / "model.gguf", **metadata), "model.gguf", needle)


def test_a_base_that_fits_gets_past_the_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rope_reached(config: dict, origin: Path) -> None:
        raise ExportError(f"{origin}: checked and read")

    monkeypatch.setattr(exporter.base, "rope_from_config", rope_reached)
    one_line_refusal(write_base(tmp_path / "base"), "checked and read")
