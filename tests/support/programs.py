"""Run exported programs and their PEFT twins on the same tokens, for parity checks."""

from __future__ import annotations

from pathlib import Path

import torch


def load_program(pte: Path, ptd: Path):
    import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401  (registers custom_sdpa)
    import executorch.kernels.quantized  # noqa: F401  (int8 embeddings of 8da4w programs)
    from executorch.extension.pybindings.portable_lib import Verification, _load_for_executorch

    return _load_for_executorch(
        str(pte), data_path=str(ptd), program_verification=Verification.InternalConsistency
    )


def program_greedy(pte: Path, ptd: Path, prompt: list[int], steps: int, chunk: int = 16):
    """Prefill ``prompt`` in chunks, then decode greedily. Returns (tokens, logits per step)."""
    module = load_program(pte, ptd)

    def embed(tokens: list[int]) -> torch.Tensor:
        return torch.tensor([tokens], dtype=torch.long)  # token ids, as ExecuTorch's runners feed

    def last_row(output: torch.Tensor) -> torch.Tensor:
        # A base program returns every position's logits; an adapter's only the last.
        return output.reshape(-1, output.shape[-1])[-1]

    pos = 0
    logits = None
    for start in range(0, len(prompt), chunk):
        piece = prompt[start : start + chunk]
        logits = last_row(module.forward([embed(piece), torch.tensor([pos])])[0])
        pos += len(piece)
    tokens, all_logits = [], []
    for _ in range(steps):
        all_logits.append(logits.clone())
        token = int(torch.argmax(logits))
        tokens.append(token)
        logits = last_row(module.forward([embed([token]), torch.tensor([pos])])[0])
        pos += 1
    return tokens, all_logits


def _pretrained(cls, base: Path, **options):
    """A Hugging Face directory, or a .gguf file (which transformers dequantizes)."""
    if base.suffix == ".gguf":
        return cls.from_pretrained(str(base.parent), gguf_file=base.name, **options)
    return cls.from_pretrained(base, **options)


def peft_greedy(base_dir: Path, adapter_dir: Path | None, prompt: list[int], steps: int):
    from transformers import AutoModelForCausalLM

    model = _pretrained(AutoModelForCausalLM, base_dir, dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    ids = list(prompt)
    tokens, all_logits = [], []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([ids])).logits[0, -1]
            all_logits.append(logits)
            token = int(torch.argmax(logits))
            tokens.append(token)
            ids.append(token)
    return tokens, all_logits


def chat_prompt(base_dir: Path, user_text: str) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = _pretrained(AutoTokenizer, base_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user_text}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]
