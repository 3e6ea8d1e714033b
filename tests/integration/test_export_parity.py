"""An exported adapter computes what the trained adapter computes (PEFT eager)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from exporter.pipeline import ExportRequest, run_export
from tests.support.artifacts import ALL_TARGETS, MAX_CONTEXT, TinyArtifacts
from tests.support.parity import PROMPTS, assert_parity
from tests.support.programs import chat_prompt, program_greedy
from tests.support.tiny import build_adapter, build_gguf


@pytest.mark.parametrize("name", ["full", "partial"])
def test_adapter_program_matches_peft(tiny_artifacts: TinyArtifacts, name: str) -> None:
    assert_parity(
        tiny_artifacts.base_dir,
        tiny_artifacts.adapters[name],
        tiny_artifacts.program(name),
        tiny_artifacts.foundation,
    )


def test_base_program_matches_base_model(tiny_artifacts: TinyArtifacts) -> None:
    assert_parity(
        tiny_artifacts.base_dir, None, tiny_artifacts.program("base"), tiny_artifacts.foundation
    )


def test_adapter_changes_the_output(tiny_artifacts: TinyArtifacts) -> None:
    # Guards the parity tests against adapters too weak to matter.
    prompt = chat_prompt(tiny_artifacts.base_dir, PROMPTS[0])
    ptd = tiny_artifacts.foundation
    _, base_logits = program_greedy(tiny_artifacts.program("base"), ptd, prompt, 1)
    _, full_logits = program_greedy(tiny_artifacts.program("full"), ptd, prompt, 1)
    assert float((base_logits[0] - full_logits[0]).abs().max()) > 0.1


def test_peft_features_folded_exactly(tiny_base: Path, tmp_path: Path) -> None:
    """rsLoRA, rank_pattern, alpha_pattern and layers_to_transform, computed like PEFT."""
    adapter = build_adapter(
        tiny_base,
        tmp_path / "fancy",
        r=4,
        alpha=8,
        targets=ALL_TARGETS,
        seed=3,
        use_rslora=True,
        rank_pattern={"q_proj": 8, "down_proj": 2},
        alpha_pattern={"v_proj": 24},
        layers_to_transform=[1],
    )
    out = tmp_path / "out"
    run_export(ExportRequest(tiny_base, [("fancy", adapter)], out, max_context=MAX_CONTEXT))
    assert_parity(tiny_base, adapter, out / "fancy.pte", out / "foundation.ptd")


def test_tiny_model_logits_are_not_flat(tiny_artifacts: TinyArtifacts) -> None:
    prompt = chat_prompt(tiny_artifacts.base_dir, PROMPTS[0])
    _, logits = program_greedy(tiny_artifacts.program("base"), tiny_artifacts.foundation, prompt, 1)
    assert float(torch.std(logits[0])) > 0.5


def test_gguf_base_matches_peft_over_the_same_weights(
    tiny_base: Path, tiny_adapters: dict[str, Path], tmp_path: Path
) -> None:
    """The GGUF path (llama.cpp's q/k permutation undone, tokenizer rebuilt) is exact too."""
    gguf = build_gguf(tiny_base, tmp_path / "tiny.gguf")
    out = tmp_path / "out"
    result = run_export(
        ExportRequest(gguf, [("partial", tiny_adapters["partial"])], out, max_context=MAX_CONTEXT)
    )
    assert "<|im_start|>" in (result.manifest.chat_template or "")
    assert_parity(tiny_base, tiny_adapters["partial"], out / "partial.pte", out / "foundation.ptd")
