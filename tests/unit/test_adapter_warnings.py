"""An adapter that does nothing, or less than meant, is flagged as it is read (issue 44):
weights all zero (PEFT's untrained lora_B), or target_modules naming no module of the base.
An adapter none of whose weights is for a module of the base is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from exporter.adapter import load_adapter
from exporter.errors import ExportError
from tests.unit.test_adapter_config import TINY, key

WIDTHS = {"q_proj": (8, 8), "down_proj": (16, 8)}  # (in, out) in TINY


def write_adapter(
    folder: Path, a: float = 1.0, b: float = 1.0, targets: object = ("q_proj", "down_proj")
) -> Path:
    """q_proj and down_proj of both layers, every A weight ``a`` and every B weight ``b``."""
    folder.mkdir()
    tensors = {}
    for layer in range(2):
        for projection, (width_in, width_out) in WIDTHS.items():
            tensors[key(layer, projection, "A")] = torch.full((4, width_in), a)
            tensors[key(layer, projection, "B")] = torch.full((width_out, 4), b)
    save_file(tensors, folder / "adapter_model.safetensors")
    targets = targets if isinstance(targets, str) else list(targets)
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": targets}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def warning_of(folder: Path) -> str | None:
    return load_adapter("odd", folder, TINY).warning


def test_a_trained_adapter_on_the_bases_modules_has_no_warning(tmp_path: Path) -> None:
    assert warning_of(write_adapter(tmp_path / "trained")) is None


def test_all_zero_lora_b_is_an_untrained_adapter(tmp_path: Path) -> None:
    warning = warning_of(write_adapter(tmp_path / "untrained", b=0.0))
    assert warning is not None
    assert "all its lora_B weights are zero" in warning


def test_all_zero_lora_a(tmp_path: Path) -> None:
    warning = warning_of(write_adapter(tmp_path / "zero_a", a=0.0))
    assert warning == "all its lora_A weights are zero"


def test_a_zero_alpha_scales_every_module_to_nothing(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "alpha0")
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": 0}))
    assert warning_of(folder) == "each module it adapts has a zero lora_A, lora_B or scale"


def test_one_module_with_weights_is_enough(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "one")
    path = folder / "adapter_model.safetensors"
    from safetensors.torch import load_file

    tensors = load_file(path)
    for name in tensors:
        if name != key(1, "down_proj", "B"):
            tensors[name] = tensors[name] if ".lora_A." in name else torch.zeros_like(tensors[name])
    save_file(tensors, path)
    assert warning_of(folder) is None


def test_target_names_that_match_only_some_modules_say_how_many(tmp_path: Path) -> None:
    targets = ("q_proj", "down_proj", "query_key_value")
    warning = warning_of(write_adapter(tmp_path / "some", targets=targets))
    assert warning == (
        "2 of its 3 target_modules name a module of the base (not 'query_key_value')"
    )


def test_target_names_that_match_no_module(tmp_path: Path) -> None:
    warning = warning_of(write_adapter(tmp_path / "none", targets=("query", "value")))
    assert warning == "none of its target_modules names a module of the base ('query', 'value')"


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        (r".*\.(q_proj|down_proj)", True),
        ("all-linear", True),
        (r"model\.layers\.1\.self_attn\.q_proj", True),
        (r".*\.c_attn", False),
        ("(", False),  # not a regular expression: it matched nothing for PEFT either
    ],
)
def test_a_target_pattern_is_matched_against_the_whole_name(
    tmp_path: Path, pattern: str, matches: bool
) -> None:
    warning = warning_of(write_adapter(tmp_path / "pattern", targets=pattern))
    if matches:
        assert warning is None
    else:
        assert warning == f"its target_modules {pattern!r} match no module of the base"


def test_zero_weights_and_unmatched_targets_make_one_line(tmp_path: Path) -> None:
    targets = ("q_proj", "down_proj", "qkv_proj")
    warning = warning_of(write_adapter(tmp_path / "both", b=0.0, targets=targets))
    assert warning is not None and "\n" not in warning
    assert "lora_B weights are zero" in warning and "2 of its 3" in warning


def test_weights_for_no_module_of_the_base_are_refused_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "neox"
    folder.mkdir()
    prefix = "base_model.model.gpt_neox.layers.0.attention.query_key_value"
    tensors = {
        f"{prefix}.lora_A.weight": torch.ones(4, 8),
        f"{prefix}.lora_B.weight": torch.ones(24, 4),
    }
    save_file(tensors, folder / "adapter_model.safetensors")
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["query_key_value"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError) as raised:
        load_adapter("neox", folder, TINY)
    message = str(raised.value)
    assert "\n" not in message
    assert "none of its 2 weights is for a module of the base" in message
