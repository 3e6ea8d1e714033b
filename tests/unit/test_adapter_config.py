"""An adapter is checked before it is read (issue 42): its ranks against the base from the
safetensors header, its adapter_config.json values by type, and its rank_pattern and
alpha_pattern keys matched as PEFT matches them, with a time limit."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import exporter.adapter
from exporter.adapter import load_adapter
from exporter.base import LlamaShape
from exporter.errors import ExportError

# Width 8 in 2 heads of 4 (1 kv head), 16 wide MLP, 2 layers.
TINY = LlamaShape(
    dim=8,
    n_layers=2,
    n_heads=2,
    n_kv_heads=1,
    head_dim=4,
    hidden_dim=16,
    vocab_size=32,
    norm_eps=1e-5,
    rope_theta=10000.0,
)
# SmolLM2-135M's: 576 wide.
SMOLLM2 = LlamaShape(
    dim=576,
    n_layers=30,
    n_heads=9,
    n_kv_heads=3,
    head_dim=64,
    hidden_dim=1536,
    vocab_size=49152,
    norm_eps=1e-5,
    rope_theta=100000.0,
)


def key(layer: int, projection: str, ab: str) -> str:
    block = "self_attn" if projection[0] in "qkvo" else "mlp"
    return f"base_model.model.model.layers.{layer}.{block}.{projection}.lora_{ab}.weight"


def write_adapter(folder: Path, rank: int = 4, **config: object) -> Path:
    """q_proj and down_proj adapted at ``rank`` in both layers of TINY."""
    folder.mkdir()
    tensors = {}
    for layer in range(2):
        for projection, (width_in, width_out) in (("q_proj", (8, 8)), ("down_proj", (16, 8))):
            tensors[key(layer, projection, "A")] = torch.ones(rank, width_in)
            tensors[key(layer, projection, "B")] = torch.ones(width_out, rank)
    save_file(tensors, folder / "adapter_model.safetensors")
    settings = {"peft_type": "LORA", "r": rank, "lora_alpha": 8, **config}
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    return folder


def write_sparse_safetensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """A valid fp32 safetensors file whose data is a hole: large shapes cost no disk."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4 * int(torch.tensor(shape).prod())
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        handle.truncate(8 + len(encoded) + offset)


@pytest.fixture
def no_tensor_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path) -> None:
        raise AssertionError(f"read {path} before its shapes were checked")

    monkeypatch.setattr(exporter.adapter, "read_safetensors", refuse)


def refusal(folder: Path, shape: LlamaShape = TINY) -> str:
    with pytest.raises(ExportError) as raised:
        load_adapter("odd", folder, shape)
    assert "\n" not in str(raised.value)
    return str(raised.value)


@pytest.mark.usefixtures("no_tensor_read")
def test_a_rank_of_65536_on_a_576_wide_base_is_refused_from_the_header(tmp_path: Path) -> None:
    folder = tmp_path / "huge"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 65536, "lora_alpha": 16}))
    # 300 MB of tensors, padded to 63 GB over every layer before any check until now.
    shapes = {key(0, "q_proj", "A"): (65536, 576), key(0, "q_proj", "B"): (576, 65536)}
    write_sparse_safetensors(folder / "adapter_model.safetensors", shapes)
    message = refusal(folder, SMOLLM2)
    assert "layer 0 q_proj has rank 65536" in message and "1 to 576" in message


@pytest.mark.usefixtures("no_tensor_read")
def test_a_rank_past_the_projections_smaller_side_is_refused(tmp_path: Path) -> None:
    # k_proj is 8 -> 4 here: rank 6 fits its input, not its output.
    folder = tmp_path / "wide"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 6}))
    tensors = {key(0, "k_proj", "A"): torch.ones(6, 8), key(0, "k_proj", "B"): torch.ones(4, 6)}
    save_file(tensors, folder / "adapter_model.safetensors")
    assert "layer 0 k_proj has rank 6; over its 8x4 projection a rank is 1 to 4" in refusal(folder)


@pytest.mark.usefixtures("no_tensor_read")
@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"r": "x"}, "r must be a positive integer, not 'x'"),  # a ValueError traceback
        ({"r": 0}, "r must be a positive integer, not 0"),
        ({"r": True}, "r must be a positive integer, not True"),
        ({"lora_alpha": "nan"}, "lora_alpha must be a finite number, not 'nan'"),
        ({"lora_alpha": float("nan")}, "lora_alpha must be a finite number, not nan"),
        ({"lora_alpha": float("inf")}, "lora_alpha must be a finite number, not inf"),
        ({"use_rslora": "yes"}, "use_rslora must be true or false, not 'yes'"),
        ({"rank_pattern": ["q_proj"]}, "rank_pattern must be an object"),
        ({"rank_pattern": {"q_proj": "4"}}, "rank_pattern['q_proj'] must be a positive integer"),
        ({"alpha_pattern": {"q_proj": float("nan")}}, "alpha_pattern['q_proj'] must be a finite"),
        ({"rank_pattern": {"(q_proj": 4}}, "rank_pattern key '(q_proj' is not a regular expr"),
    ],
)
def test_wrong_typed_adapter_config_values_are_one_line(
    tmp_path: Path, config: dict, needle: str
) -> None:
    message = refusal(write_adapter(tmp_path / "odd", **config))
    assert "adapter_config.json" in message and needle in message, message


def test_the_rank_pattern_key_that_hung_lora_export_is_matched_at_once(tmp_path: Path) -> None:
    # Under re, (.*.*.*)*Z backtracked for ever against "model.layers.0.self_attn.q_proj".
    folder = write_adapter(tmp_path / "catastrophic", rank_pattern={"(.*.*.*)*Z": 2})
    adapter = load_adapter("catastrophic", folder, TINY)
    assert adapter.rank == 4 and adapter.targets == ["q_proj", "down_proj"]


def test_a_rank_pattern_key_that_runs_out_of_time_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporter.adapter, "PATTERN_SECONDS", 0.2, raising=False)
    # One that makes even the regex package backtrack: it stops at the time limit.
    folder = write_adapter(tmp_path / "slow", rank_pattern={r"(\w|.)*\.": 2})
    message = refusal(folder)
    assert "rank_pattern and alpha_pattern keys took over 0.2 s" in message, message


def test_rank_and_alpha_patterns_shape_the_weights(tmp_path: Path) -> None:
    folder = write_adapter(
        tmp_path / "patterned", rank_pattern={"down_proj": 4}, alpha_pattern={"q_proj": 16}
    )
    adapter = load_adapter("patterned", folder, TINY)
    # B is scaled by alpha / r: 16 / 4 on q_proj, the default 8 / 4 on down_proj.
    assert adapter.weights["layers.0.attention.wq.lora_b.weight"].max().item() == 4.0
    assert adapter.weights["layers.1.feed_forward.w2.lora_b.weight"].max().item() == 2.0
