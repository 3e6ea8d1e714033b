"""Make an adapter's program from a lowered template instead of lowering it again.

Two LoRA programs over one base with the same rank and targets differ only in the bytes of
their LoRA tensors: the graph, the XNNPACK delegates and the foundation references are the
same. So one *template* program is lowered per (rank, targets) with deterministic
stand-in LoRA weights, and each adapter's program is that template with the stand-in
tensors' bytes overwritten by the adapter's.

XNNPACK names each constant by the SHA-256 of its fp32 bytes, and the delegates and the
program's named-data table refer to it by that name, so every name is rewritten too. Both
the bytes and the names keep their lengths, so no offset in the file moves.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from exporter.adapter import Adapter
from lora_tui.format import FP32, Quantization
from lora_tui.format.scaling import find_names

LORA_B = ".lora_b."  # in the name of each LoRA B weight (``adapter.py``)
TENSOR_ALIGNMENT = 16  # every tensor's data in a program starts at a multiple of this
_STAND_IN_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd
Weights = dict[str, torch.Tensor]

# Lowered LoRA programs that adapters of the same rank and targets are filled into.
TEMPLATES_DIR = ".templates"
TEMPLATE_VERSION = 5  # bump when lowering or the stand-ins change: older ones are not reused


class SpliceError(Exception):
    """The template does not hold the stand-in tensors it should; lower it again."""


def template_weights(shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Stand-in LoRA weights, unique to each name, so each tensor's bytes occur once in the
    program, and made with integer arithmetic only, so every machine makes the same bytes:
    a template lowered on one machine can be filled on another (``exporter/prebuilt.py``).

    Element k of a tensor is the top 24 bits of ``k * M + seed`` (mod 2**64, seed from the
    name's SHA-256), centred and scaled by a power of two: exact in fp32, within ±2**-7."""
    weights = {}
    for name, shape in sorted(shapes.items()):
        seed = np.uint64(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))
        count = int(np.prod(shape, dtype=np.int64))
        with np.errstate(over="ignore"):  # the wrap-around mod 2**64 is the point
            mixed = np.arange(count, dtype=np.uint64) * _STAND_IN_MULTIPLIER + seed
        top = (mixed >> np.uint64(40)).astype(np.int64) - 2**23
        values = top.astype(np.float32) * np.float32(2.0**-30)
        weights[name] = torch.from_numpy(values.reshape(tuple(shape)))
    return weights


def quantized_suffix(quantization: Quantization) -> str:
    """How a lowering's key says its quantization: nothing for fp32, else ``-8da4wg32``."""
    return "" if quantization == FP32 else f"-{quantization.slug}"


def template_for(
    adapter: Adapter, quantization: Quantization, made: dict[Path, Weights] | None = None
) -> tuple[Path, Weights]:
    """Where the template for this adapter's rank and targets lives in an output folder, and
    the stand-in LoRA weights it was lowered with (taken from ``made`` when they are there,
    and kept in it: a run's checkpoints share one template)."""
    key = f"v{TEMPLATE_VERSION}-r{adapter.rank}-{'.'.join(adapter.targets)}"
    key += quantized_suffix(quantization)
    template = Path(TEMPLATES_DIR) / f"{key}.pte"
    made = {} if made is None else made
    if template not in made:
        made[template] = template_weights({n: w.shape for n, w in adapter.weights.items()})
    return template, made[template]


def _check_whole(program: bytes) -> None:
    """The file must be as long as its extended header says (a cut-off end may hold no LoRA
    tensor, so finding them all does not prove the template whole)."""
    if len(program) < 40 or program[8:12] != b"eh00":
        raise SpliceError("the template is not an ExecuTorch program with segments")
    program_size, segment_base, segment_size = struct.unpack_from("<QQQ", program, 16)
    if len(program) < max(program_size, segment_base + segment_size):
        raise SpliceError("the template is truncated")


def fp32_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().to(torch.float32).contiguous().numpy().tobytes()


def _xnnpack_name(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()


def aligned_starts(program: bytes, tensors: dict[str, bytes]) -> dict[str, list[int]]:
    """Where each tensor's bytes occur in ``program``, looking only at the offsets a tensor's
    data can start at (ExecuTorch aligns them to TENSOR_ALIGNMENT). One vectorised pass over
    the program instead of a byte search per tensor (seconds for an adapter's 420 tensors)."""
    names_by_head: dict[int, list[str]] = {}
    for name, data in tensors.items():
        names_by_head.setdefault(int.from_bytes(data[:8], "little"), []).append(name)
    words = np.frombuffer(program, dtype="<u8", count=len(program) // 8)
    heads = words[:: TENSOR_ALIGNMENT // 8]
    candidates = np.flatnonzero(np.isin(heads, np.array(list(names_by_head), dtype=np.uint64)))
    starts: dict[str, list[int]] = {name: [] for name in tensors}
    for index in candidates.tolist():
        start = index * TENSOR_ALIGNMENT
        for name in names_by_head[int(heads[index])]:
            data = tensors[name]
            if program[start : start + len(data)] == data:
                starts[name].append(start)
    return starts


@dataclass(frozen=True)
class TemplatePlan:
    """Where a template holds its stand-ins: each LoRA tensor's offset and length, and the
    offsets of the XNNPACK name each stand-in's bytes give it. Finding them is most of a
    fill (the names: one pass over the program for all 420 of them, seconds at SmolLM2's
    size), and they are the same for every adapter filled in, so a run's checkpoints find
    them once."""

    tensors: dict[str, tuple[int, int]]
    names: dict[str, list[int]]


def plan_template(template: bytes, stand_ins: dict[str, torch.Tensor]) -> TemplatePlan:
    _check_whole(template)
    olds = {name: fp32_bytes(stand_in) for name, stand_in in stand_ins.items()}
    starts = aligned_starts(template, olds)
    for name, found in starts.items():
        if len(found) != 1:
            raise SpliceError(f"{name}: not found exactly once in the template")
    by_key = {_xnnpack_name(old): name for name, old in olds.items()}
    found = find_names(template, by_key.keys())  # every name in one pass over the program
    names = {name: found[key] for key, name in by_key.items()}
    tensors = {name: (starts[name][0], len(old)) for name, old in olds.items()}
    return TemplatePlan(tensors, names)


def fill(
    template: bytes, plan: TemplatePlan, weights: dict[str, torch.Tensor]
) -> tuple[bytes, list[list[int]]]:
    """The planned template with each stand-in tensor, and its name, replaced by the
    adapter's (the same length, so no offset moves), and where its lora_B tensors are
    ([byte offset, fp32 element count] each, by offset): what the manifest records, so
    lora-tui can make the program at another strength."""
    if plan.tensors.keys() != weights.keys():
        raise SpliceError("the adapter's LoRA tensors are not the template's")
    program = bytearray(template)
    lora_b: list[list[int]] = []
    for name, (start, length) in plan.tensors.items():
        new = fp32_bytes(weights[name])
        if len(new) != length:
            raise SpliceError(f"{name}: shape {tuple(weights[name].shape)} is not the template's")
        program[start : start + length] = new
        new_key = _xnnpack_name(new)
        for spot in plan.names[name]:
            program[spot : spot + len(new_key)] = new_key
        if LORA_B in name:
            lora_b.append([start, length // 4])
    return bytes(program), sorted(lora_b)


def splice(
    template: bytes, stand_ins: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]
) -> tuple[bytes, list[list[int]]]:
    """The template program with each stand-in tensor replaced by the adapter's, and where
    its lora_B tensors are (``fill``)."""
    if stand_ins.keys() != weights.keys():
        raise SpliceError("the adapter's LoRA tensors are not the template's")
    return fill(template, plan_template(template, stand_ins), weights)
