"""Decode speed of an exported adapter program against PEFT eager, same base, same adapter.

    .venv/bin/python -m benchmarks.decode_vs_peft --base BASE --adapter ADAPTER_DIR \\
        --weights OUT/foundation.ptd --program OUT/NAME.pte [--tokens 64]

BASE is what lora-export was given (a Hugging Face directory or a .gguf file). Both run
greedy decoding of the same number of new tokens after the same chat prompt; decode speed
counts the tokens after the first, so prefill is excluded on both sides. The figures go to
``benchmarks/results/decode_vs_peft.json``, which the docs' table is made from.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from benchmarks.record import write_results
from lora_tui.common.native_output import native_output_to
from lora_tui.engine import GenerationSettings, Message, ModelHost

PROMPT = "Explain in a few sentences what a LoRA adapter is and why it is small."


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


def peft_decode_tok_s(base: Path, adapter: Path, prompt: str, tokens: int) -> float:
    model, tokenizer = load_peft(base, adapter)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model(ids, use_cache=True)
        past, token = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
        started = time.perf_counter()
        for _ in range(tokens - 1):
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
        return (tokens - 1) / (time.perf_counter() - started)


def program_decode_tok_s(weights: Path, program: Path, prompt: str, tokens: int) -> float:
    with native_output_to(Path("/dev/null")):
        host = ModelHost(weights)
        name = host.load(program).name
        host.end_checks()  # the pre-flight child is not needed any more
        # A stop token would end the reply early: stop on none.
        session = host.sessions[name]
        session.chat = dataclasses.replace(session.chat, stop_ids=frozenset())
        settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)
        stats = host.answer(name, [Message("user", prompt)], settings).stats
    assert stats is not None and stats.new_tokens == tokens, stats
    return stats.decode_tok_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--program", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    executorch = program_decode_tok_s(args.weights, args.program, PROMPT, args.tokens)
    eager = peft_decode_tok_s(args.base, args.adapter, PROMPT, args.tokens)
    print(f"decode, {args.tokens} new tokens, greedy, same prompt")
    print(f"  ExecuTorch program (XNNPACK): {executorch:6.1f} tok/s")
    print(f"  PEFT eager (torch):           {eager:6.1f} tok/s")
    print(f"  ratio:                        {executorch / eager:6.2f}x")
    write_results(
        "decode_vs_peft",
        {
            "program": args.program.name,
            "base": args.base.name,
            "new_tokens": args.tokens,
            "executorch_tok_s": round(executorch, 1),
            "peft_eager_tok_s": round(eager, 1),
            "ratio": round(executorch / eager, 2),
        },
    )


if __name__ == "__main__":
    main()
