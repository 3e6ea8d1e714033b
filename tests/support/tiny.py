"""Tiny random-weight Llama models, tokenizers and PEFT adapters for fast tests.

Everything here is built in a few seconds on the CPU, with fixed seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "ExecuTorch runs PyTorch programs on device. A .pte file holds a program.",
    "Low-rank adapters change a model with few weights. Héllo wörld, naïve café — ünïcödé ✓ 日本語",
    "user assistant system You are a helpful assistant. What is the answer? 0123456789",
]


def build_tokenizer(
    directory: Path, vocab_size: int = 384, special_tokens: list[str] = SPECIAL_TOKENS
) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<|im_end|>",
                "chat_template": CHATML_TEMPLATE,
            }
        )
    )


TEMPLATES = Path(__file__).parent / "fixtures" / "templates"


@dataclass(frozen=True)
class Family:
    """How a model family's tiny fixture differs from the plain Llama one: its config, its
    special tokens and its real chat template."""

    name: str
    model_type: str
    special_tokens: list[str]
    template_file: str
    tokenizer_config: dict[str, Any]
    config: dict[str, Any]
    stop_tokens: list[str]  # generation_config.json's eos_token_id, by token
    plain_tokens: list[str] = field(default_factory=list)  # added, not special (<think>)


FAMILIES: dict[str, Family] = {
    "llama3": Family(
        name="llama3",
        model_type="llama",
        special_tokens=[
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eom_id|>",
            "<|eot_id|>",
            "<|python_tag|>",
        ],
        template_file="llama3.jinja",
        tokenizer_config={"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
        # Llama 3.2's: tied, theta 500000 and llama3 scaling. original_max_position_embeddings
        # is small here so the scaling changes positions a tiny context reaches.
        config={
            "tie_word_embeddings": True,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        },
        stop_tokens=["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
    ),
    "qwen2": Family(
        name="qwen2",
        model_type="qwen2",
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        template_file="qwen2_5.jinja",
        tokenizer_config={"bos_token": None, "eos_token": "<|im_end|>"},
        config={"tie_word_embeddings": True, "rope_theta": 1000000.0},
        stop_tokens=["<|im_end|>", "<|endoftext|>"],
        plain_tokens=["<tool_call>", "</tool_call>"],
    ),
    "qwen3": Family(
        name="qwen3",
        model_type="qwen3",
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        template_file="qwen3.jinja",
        tokenizer_config={"bos_token": None, "eos_token": "<|im_end|>"},
        # An explicit head_dim that is not hidden / heads, as Qwen3's; untied embeddings.
        config={"tie_word_embeddings": False, "rope_theta": 1000000.0, "head_dim": 48},
        stop_tokens=["<|im_end|>", "<|endoftext|>"],
        plain_tokens=["<think>", "</think>", "<tool_call>", "</tool_call>"],
    ),
}


def build_family_base(directory: Path, family: Family, *, seed: int = 0) -> Path:
    """A tiny random base of ``family`` in Hugging Face format, saved as the Hub has them
    (Llama 3's rope_scaling beside rope_theta), with non-trivial norms and biases so a
    dropped q/k-norm or bias shows in the logits."""
    from tokenizers import AddedToken, Tokenizer
    from transformers import AutoConfig, AutoModelForCausalLM

    build_tokenizer(directory, special_tokens=family.special_tokens)
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    if family.plain_tokens:
        tokenizer.add_tokens([AddedToken(t, special=False) for t in family.plain_tokens])
        tokenizer.save(str(directory / "tokenizer.json"))
    template = (TEMPLATES / family.template_file).read_text()
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                **family.tokenizer_config,
                "chat_template": template,
            }
        )
    )
    stop_ids = [tokenizer.token_to_id(t) for t in family.stop_tokens]
    config = AutoConfig.for_model(
        family.model_type,
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=256,
        intermediate_size=544,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        bos_token_id=tokenizer.token_to_id(family.special_tokens[0]),
        eos_token_id=stop_ids,
        **{k: v for k, v in family.config.items() if k not in ("rope_theta", "rope_scaling")},
        rope_parameters={
            "rope_type": "default",
            "rope_theta": family.config["rope_theta"],
            **family.config.get("rope_scaling", {}),
        },
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.08)
            elif name.endswith("bias"):
                param.normal_(0.0, 0.5)
            else:  # RMSNorm scales, q_norm and k_norm among them
                param.normal_(1.0, 0.3)
    model.save_pretrained(directory, safe_serialization=True)
    saved = json.loads((directory / "config.json").read_text())
    rope = saved.pop("rope_parameters")
    saved["rope_theta"] = rope.pop("rope_theta")
    if rope.get("rope_type") != "default":
        saved["rope_scaling"] = rope
    (directory / "config.json").write_text(json.dumps(saved, indent=2))
    (directory / "generation_config.json").write_text(
        json.dumps({"bos_token_id": config.bos_token_id, "eos_token_id": stop_ids})
    )
    return directory


def build_base(directory: Path, *, n_layers: int = 2, seed: int = 0, dim: int = 512) -> Path:
    """A random Llama in Hugging Face format, with its tokenizer."""
    from tokenizers import Tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    build_tokenizer(directory)
    vocab = Tokenizer.from_file(str(directory / "tokenizer.json")).get_vocab_size()
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=dim,
        intermediate_size=dim * 2 + 32,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger weights than the default init, so logits are not flat
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.08)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def build_adapter(
    base_dir: Path,
    directory: Path,
    *,
    r: int = 8,
    alpha: float = 16,
    targets: list[str] | None = None,
    seed: int = 1,
    trained: bool = True,
    **lora_kwargs: Any,
) -> Path:
    """A PEFT adapter with random (non-zero) A and B over the base in ``base_dir``; with
    ``trained=False``, as PEFT makes it before training (random A, every B zero)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    targets = targets or [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(
        r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, **lora_kwargs
    )
    model = get_peft_model(base, config)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name and trained:
                param.normal_(0.0, 0.1)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def build_gguf(base_dir: Path, path: Path) -> Path:
    """Write the HF base in ``base_dir`` as a llama.cpp-style fp32 GGUF, tokenizer included,
    following llama.cpp's converter: Llama's q/k rows permuted (Qwen's are not), Qwen2's
    biases, Qwen3's q/k norms and key length, an untied output, and Llama 3's rope scaling
    as per-frequency factors (``rope_freqs``)."""
    import numpy as np
    from gguf import GGUFWriter
    from safetensors.torch import load_file

    config = json.loads((base_dir / "config.json").read_text())
    token_config = json.loads((base_dir / "tokenizer_config.json").read_text())
    arch = config["model_type"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    tokenizer = json.loads((base_dir / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    specials = set()
    for added in tokenizer["added_tokens"]:
        vocab[added["content"]] = added["id"]
        if added["special"]:
            specials.add(added["content"])
    added_plain = {a["content"] for a in tokenizer["added_tokens"]} - specials
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]

    writer = GGUFWriter(str(path), arch)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    rope = config.get("rope_parameters") or {"rope_theta": config["rope_theta"]}
    writer.add_rope_freq_base(rope["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in specials else 4 if t in added_plain else 1 for t in tokens])
    writer.add_token_merges(merges)
    if token_config.get("bos_token"):
        writer.add_bos_token_id(vocab[token_config["bos_token"]])
    writer.add_eos_token_id(vocab[token_config["eos_token"]])
    writer.add_chat_template(token_config["chat_template"])
    if (config.get("rope_scaling") or {}).get("rope_type") == "llama3":
        writer.add_tensor("rope_freqs.weight", _llama3_rope_factors(config, head_dim))

    def permute(weight: np.ndarray, n_head: int) -> np.ndarray:
        if arch != "llama":
            return weight
        return (
            weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2)
            .reshape(weight.shape)
        )

    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    for key, tensor in load_file(base_dir / "model.safetensors").items():
        array = tensor.float().numpy()
        if key == "model.embed_tokens.weight":
            writer.add_tensor("token_embd.weight", array)
        elif key == "model.norm.weight":
            writer.add_tensor("output_norm.weight", array)
        elif key == "lm_head.weight":
            writer.add_tensor("output.weight", array)
        elif key.startswith("model.layers."):
            _, _, layer, rest = key.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            if module == "self_attn.q_proj":
                array = permute(array, heads)
            elif module == "self_attn.k_proj":
                array = permute(array, kv_heads)
            writer.add_tensor(f"blk.{layer}.{names[module]}.{kind}", array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _llama3_rope_factors(config: dict[str, Any], head_dim: int) -> Any:
    """Llama 3's scaling as llama.cpp's converter writes it: one divisor per frequency."""
    import math

    import numpy as np

    scaling = config["rope_scaling"]
    factor, old_context = scaling["factor"], scaling["original_max_position_embeddings"]
    low_wavelen = old_context / scaling["low_freq_factor"]
    high_wavelen = old_context / scaling["high_freq_factor"]
    freqs = 1.0 / (config["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - scaling["low_freq_factor"]) / (
                scaling["high_freq_factor"] - scaling["low_freq_factor"]
            )
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)
