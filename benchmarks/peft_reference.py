"""The reference the benchmarks hold lora-tui's programs to: the fp32 base with the adapter
unmerged under PEFT, in eager torch."""

from __future__ import annotations

from pathlib import Path

import torch


def load_peft(base: Path, adapter: Path):
    """The fp32 base (a Hugging Face folder or a GGUF) with the adapter unmerged, and its
    tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": base.name} if base.suffix == ".gguf" else {}
    root = str(base.parent if base.suffix == ".gguf" else base)
    model = AutoModelForCausalLM.from_pretrained(root, dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(root, **kwargs)
    return PeftModel.from_pretrained(model, adapter).eval(), tokenizer
