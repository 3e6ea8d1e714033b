"""A template is planned once and filled many times (issue 44: a run's checkpoints): the
plan finds each stand-in tensor and each of its XNNPACK names, and a fill from it writes
what a splice from scratch writes, for every adapter filled in."""

from __future__ import annotations

import hashlib
import struct

import pytest
import torch

from exporter.splice import (
    TENSOR_ALIGNMENT,
    SpliceError,
    fill,
    fp32_bytes,
    plan_template,
    splice,
    template_weights,
)

SHAPES = {
    "layers.0.attention.wq.lora_a.weight": torch.Size([4, 16]),
    "layers.0.attention.wq.lora_b.weight": torch.Size([16, 4]),
}


def name_of(tensor: torch.Tensor) -> bytes:
    return hashlib.sha256(fp32_bytes(tensor)).hexdigest().encode()


def fake_template(stand_ins: dict[str, torch.Tensor]) -> bytes:
    """An extended header, each stand-in's XNNPACK name twice (a delegate's and the
    named-data table's), then each tensor at an aligned offset."""
    body = bytearray(b"\0" * 48)
    for tensor in stand_ins.values():
        body += struct.pack("<I", 64) + name_of(tensor) + b"\0" * 12
    for tensor in stand_ins.values():
        body += struct.pack("<I", 64) + name_of(tensor) + b"\0" * 12
    for tensor in stand_ins.values():
        body += b"\0" * (-len(body) % TENSOR_ALIGNMENT) + fp32_bytes(tensor)
    body[8:12] = b"eh00"
    struct.pack_into("<QQQ", body, 16, len(body), len(body), 0)
    return bytes(body)


def adapter(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}


def test_one_plan_fills_every_checkpoint_as_a_splice_would() -> None:
    stand_ins = template_weights(SHAPES)
    template = fake_template(stand_ins)
    plan = plan_template(template, stand_ins)
    assert all(len(spots) == 2 for spots in plan.names.values())
    for seed in (1, 2, 3):
        weights = adapter(seed)
        filled, lora_b = fill(template, plan, weights)
        assert (filled, lora_b) == splice(template, stand_ins, weights)
        assert len(lora_b) == sum(".lora_b." in name for name in SHAPES)
        assert len(filled) == len(template)
        for tensor in weights.values():
            assert filled.count(fp32_bytes(tensor)) == 1 and filled.count(name_of(tensor)) == 2
        assert not any(name_of(t) in filled for t in stand_ins.values())


def test_a_fill_of_the_wrong_shape_or_tensors_is_refused() -> None:
    stand_ins = template_weights(SHAPES)
    plan = plan_template(fake_template(stand_ins), stand_ins)
    weights = adapter(1)
    name = next(iter(weights))
    with pytest.raises(SpliceError, match="is not the template's"):
        fill(fake_template(stand_ins), plan, {**weights, name: torch.zeros(2, 2)})
    with pytest.raises(SpliceError, match="not the template's"):
        fill(fake_template(stand_ins), plan, {name: weights[name]})


def test_a_template_without_its_stand_ins_is_refused_when_planned() -> None:
    stand_ins = template_weights(SHAPES)
    other = template_weights({f"{n}.x": s for n, s in SHAPES.items()})
    renamed = {name: other[f"{name}.x"] for name in stand_ins}
    with pytest.raises(SpliceError, match="not found exactly once"):
        plan_template(fake_template(renamed), stand_ins)
    with pytest.raises(SpliceError, match="truncated"):
        plan_template(fake_template(stand_ins)[:-4], stand_ins)
