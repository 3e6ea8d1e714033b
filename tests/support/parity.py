"""PEFT parity: a program's greedy tokens and logits against PEFT's over the same weights."""

from __future__ import annotations

from pathlib import Path

from tests.support.programs import chat_prompt, peft_greedy, program_greedy

PROMPTS = ["What is the capital of France?", "Tell me about ExecuTorch and café ✓"]


STEPS = 32


TOLERANCE = 1e-3


def assert_parity(base_dir: Path, adapter_dir: Path | None, pte: Path, ptd: Path) -> None:
    for text in PROMPTS:
        prompt = chat_prompt(base_dir, text)
        want_tokens, want_logits = peft_greedy(base_dir, adapter_dir, prompt, STEPS)
        got_tokens, got_logits = program_greedy(pte, ptd, prompt, STEPS)
        pairs = zip(got_logits, want_logits, strict=True)
        worst = max(float((got - want).abs().max()) for got, want in pairs)
        assert worst <= TOLERANCE, f"{pte.name}: max abs logit diff {worst:.2e} on {text!r}"
        assert got_tokens == want_tokens, f"{pte.name}: greedy tokens differ on {text!r}"
