"""The stand-in LoRA weights a template is lowered with are the same bytes on every machine.

A template the package ships (``exporter/prebuilt.py``) was lowered elsewhere; filling it
here finds its stand-ins by their bytes, so a change to them must come with a new
``TEMPLATE_VERSION`` (and new shipped lowerings), which this digest check forces.
"""

from __future__ import annotations

import hashlib

import torch

from exporter.splice import fp32_bytes, template_weights

SHAPES = {
    "layers.0.attention.wq.lora_a.weight": torch.Size([8, 64]),
    "layers.0.attention.wq.lora_b.weight": torch.Size([64, 8]),
}


def test_stand_ins_are_fixed_bytes() -> None:
    digests = {
        name: hashlib.sha256(fp32_bytes(tensor)).hexdigest()
        for name, tensor in template_weights(SHAPES).items()
    }
    assert digests == {
        "layers.0.attention.wq.lora_a.weight": (
            "0c78fcdb912cb0fbe520aa9edc4c19f0aeb389d760402bb596b3d67583b9fff5"
        ),
        "layers.0.attention.wq.lora_b.weight": (
            "3abe943cc891cd08c64756f0637704865320271b5ab153748ab98c13644a3d18"
        ),
    }


def test_stand_ins_are_small_and_each_unique() -> None:
    shapes = {
        f"layers.{i}.feed_forward.w{j}.lora_a.weight": torch.Size([16, 576])
        for i in range(30)
        for j in (1, 2, 3)
    }
    weights = template_weights(shapes)
    assert all(w.dtype == torch.float32 and float(w.abs().max()) <= 2**-7 for w in weights.values())
    heads = {fp32_bytes(w)[:16] for w in weights.values()}
    assert len(heads) == len(weights)  # splice finds each by its bytes
