"""The bases people fine-tune: Llama 3.x (llama3 rope scaling), Qwen2.5 (q/k/v bias) and
Qwen3 (q/k norm, explicit head_dim, untied), from a Hugging Face folder and from a GGUF.

Each exported program computes what PEFT computes over the same base, with an adapter saved
the way Unsloth saves one. A dropped bias, norm or rope scaling would break parity: the
fixtures' norms and biases are far from 1 and 0, and their rope scaling starts at position 16.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from exporter.base import load_base
from exporter.pipeline import ExportRequest, run_export
from lora_tui.engine.chat import ChatFormat
from lora_tui.engine.types import Message
from lora_tui.format import Manifest
from tests.support.parity import assert_parity
from tests.support.tiny import FAMILIES, Family, build_adapter, build_family_base, build_gguf

# Long enough for Llama 3's dated system prompt, the prompt and 32 greedy steps.
FAMILY_CONTEXT = 256

# What Unsloth writes beside PEFT's own keys, and the 4-bit copy of the base it trains on.
UNSLOTH_CONFIG = {
    "base_model_name_or_path": "unsloth/{name}-unsloth-bnb-4bit",
    "task_type": "CAUSAL_LM",
    "lora_dropout": 0,
    "loftq_config": {},
    "layer_replication": None,
    "qalora_group_size": 16,
    "use_qalora": False,
    "target_parameters": None,
    "trainable_token_indices": None,
    "megatron_core": "megatron.core",
}


@dataclass
class FamilyFixture:
    family: Family
    base_dir: Path
    adapter: Path
    root: Path


def save_like_unsloth(adapter: Path, family: Family) -> None:
    """Unsloth's adapter_config keys, and its bf16 LoRA weights."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    config.update(UNSLOTH_CONFIG)
    config["base_model_name_or_path"] = UNSLOTH_CONFIG["base_model_name_or_path"].format(
        name=family.name
    )
    (adapter / "adapter_config.json").write_text(json.dumps(config, indent=2))
    weights = load_file(adapter / "adapter_model.safetensors")
    save_file(
        {k: v.to(torch.bfloat16) for k, v in weights.items()},
        adapter / "adapter_model.safetensors",
    )


@pytest.fixture(scope="session", params=list(FAMILIES))
def family(request: pytest.FixtureRequest, tmp_path_factory) -> FamilyFixture:
    spec = FAMILIES[request.param]
    root = tmp_path_factory.mktemp(spec.name)
    base = build_family_base(root / "base", spec)
    adapter = build_adapter(base, root / "adapter", r=8, alpha=16, seed=1)
    save_like_unsloth(adapter, spec)
    return FamilyFixture(spec, base, adapter, root)


def export(source: Path, fixture: FamilyFixture, out: Path) -> Manifest:
    request = ExportRequest(source, [("tuned", fixture.adapter)], out, max_context=FAMILY_CONTEXT)
    return run_export(request).manifest


def test_hf_folder_matches_peft(family: FamilyFixture) -> None:
    out = family.root / "out-hf"
    manifest = export(family.base_dir, family, out)
    assert_parity(family.base_dir, family.adapter, out / "tuned.pte", out / "foundation.ptd")
    tokenizer = ChatFormat.from_files(out, manifest).tokenizer
    stops = {tokenizer.id_to_token(i) for i in manifest.stop_ids}
    assert set(family.family.stop_tokens) <= stops


def test_gguf_matches_peft(family: FamilyFixture) -> None:
    gguf = build_gguf(family.base_dir, family.root / "base.gguf")
    out = family.root / "out-gguf"
    manifest = export(gguf, family, out)
    assert_parity(family.base_dir, family.adapter, out / "tuned.pte", out / "foundation.ptd")
    assert manifest.shape.get("family", "llama") == family.family.model_type
    # One eos id in the GGUF; the family's other end tokens still stop it.
    tokenizer = ChatFormat.from_files(out, manifest).tokenizer
    stops = {tokenizer.id_to_token(i) for i in manifest.stop_ids}
    assert set(family.family.stop_tokens) <= stops


def test_gguf_reads_the_same_base_as_the_hf_folder(family: FamilyFixture) -> None:
    """Weights bit for bit, and llama.cpp's rope factors giving transformers' frequencies."""
    gguf = family.root / "same.gguf"
    from_hf, from_gguf = load_base(family.base_dir), load_base(build_gguf(family.base_dir, gguf))
    assert from_gguf.shape.family == from_hf.shape.family
    assert from_gguf.shape.rope_type == from_hf.shape.rope_type
    assert from_gguf.weights.keys() == from_hf.weights.keys()
    for name, weight in from_hf.weights.items():
        assert torch.equal(from_gguf.weights[name], weight), name
    torch.testing.assert_close(from_gguf.rope.inv_freq, from_hf.rope.inv_freq, rtol=1e-6, atol=0)


def test_llama3_scaling_changes_the_rotary_tables() -> None:
    """Guards the Llama 3 parity test: its scaling must move frequencies the tiny context
    reaches, or a program that dropped it would pass."""
    from exporter.base import rope_from_config

    spec = FAMILIES["llama3"]
    config = {"model_type": "llama", "hidden_size": 256, "num_attention_heads": 4, **spec.config}
    scaled = rope_from_config(config, Path("config.json"))
    plain = rope_from_config({**config, "rope_scaling": None}, Path("config.json"))
    cos_scaled, _ = scaled.tables(FAMILY_CONTEXT)
    cos_plain, _ = plain.tables(FAMILY_CONTEXT)
    assert float((cos_scaled - cos_plain).abs().max()) > 0.5


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_type": "linear", "factor": 4.0},
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
        {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    ],
    ids=lambda rope: rope["rope_type"],
)
def test_rotary_tables_match_transformers(rope: dict) -> None:
    """The tables lowering installs equal transformers' rotary embedding's cos and sin."""
    from transformers import AutoConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from exporter.base import rope_from_config

    config = {
        "model_type": "llama",
        "hidden_size": 256,
        "num_attention_heads": 4,
        "rope_theta": 500000.0,
        "max_position_embeddings": 4096,
        "rope_scaling": rope,
    }
    ours = rope_from_config(config, Path("config.json"))
    hf = LlamaRotaryEmbedding(AutoConfig.for_model(**config))
    positions = torch.arange(FAMILY_CONTEXT)[None, :]
    want_cos, want_sin = hf(torch.zeros(1, dtype=torch.float32), positions)
    got_cos, got_sin = ours.tables(FAMILY_CONTEXT)
    assert torch.equal(got_cos, want_cos[0]) and torch.equal(got_sin, want_sin[0])


def test_chat_formats_per_family(family: FamilyFixture) -> None:
    chat = ChatFormat.from_files(family.base_dir)
    text = chat.render([Message("user", "hi")])
    name = family.family.name
    if name == "llama3":
        assert text.startswith("<|begin_of_text|><|start_header_id|>system")
        assert text.count("<|begin_of_text|>") == 1
        assert f"Today Date: {datetime.now():%d %b %Y}" in text  # strftime_now
        assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    elif name == "qwen2":
        assert "You are Qwen, created by Alibaba Cloud." in text
        assert text.endswith("<|im_start|>assistant\n")
    else:  # Qwen3: thinking off unless asked for
        assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        thinking = chat.render([Message("user", "hi")], thinking=True)
        assert thinking.endswith("<|im_start|>assistant\n")
    assert chat.supports_thinking == (name == "qwen3")
    stops = {chat.tokenizer.id_to_token(i) for i in chat.stop_ids}
    assert set(family.family.stop_tokens) <= stops
