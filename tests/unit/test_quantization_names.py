"""What ``--quantize MODE [--group-size N]`` means, and how each quantization is named in
panes, file names and foundation ids."""

from __future__ import annotations

import pytest

from lora_tui.format import FP32, Quantization, foundation_id


@pytest.mark.parametrize(
    ("mode", "group_size", "label", "slug"),
    [
        ("none", None, "fp32", "fp32"),
        ("8da4w", None, "8da4w g32", "8da4wg32"),  # ExecuTorch's LoRA demo's groups
        ("8da4w", 128, "8da4w g128", "8da4wg128"),
        ("8da8w", None, "8da8w", "8da8w"),  # one scale per output channel
    ],
)
def test_each_mode_has_its_default_groups_and_names(
    mode: str, group_size: int | None, label: str, slug: str
) -> None:
    quantization = Quantization.named(mode, group_size)
    assert (quantization.label, quantization.slug) == (label, slug)
    assert (quantization == FP32) == (mode == "none")


def test_each_quantization_has_its_own_foundation_id() -> None:
    ids = {
        foundation_id("base", 2048, Quantization.named(mode)) for mode in ("none", "8da4w", "8da8w")
    }
    assert len(ids) == 3
    # fp32 keeps the id it had before quantizations existed.
    assert foundation_id("base", 2048, FP32) == foundation_id("base", 2048)
