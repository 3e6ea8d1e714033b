"""Lowerings the package ships: a template and its foundation made again in seconds, not
lowered in minutes.

A template's bytes depend on the base only through its shape, its foundation id and the
names XNNPACK gives the foundation's weights (SHA-256s of their bytes); the foundation is
the base's weights and rotary tables, laid out as ExecuTorch's FlatTensor serializer lays
them out. So for a base the package knows (the demo's), a real lowering's output is kept
less what can be made again: the template without its stand-in LoRA bytes (which
``template_weights`` makes the same on every machine) and, for the foundation, which
weight each entry holds. Both are checked as they are made: the template against the
SHA-256 of the lowered one, each foundation entry XNNPACK names by its bytes against that
name. On any mismatch, or another ExecuTorch or torch, the exporter lowers as before.

``python -m exporter.prebuilt OUT_DIR BASE ADAPTER_DIR`` makes the files from a folder
``lora-export`` wrote (docs/development.md). ``tests/integration/test_shipped_adapters.py``
checks the shipped fp32 one byte for byte against a lowering of today's pins, and that the
quantized ones unpack.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
import lzma
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from exporter.base import BaseModel
from exporter.splice import (
    TEMPLATE_VERSION,
    Weights,
    aligned_starts,
    fp32_bytes,
    quantized_suffix,
    template_for,
)
from lora_tui.common.files import write_atomic, write_bytes_atomic
from lora_tui.format import FP32, ArtifactError, Quantization, read_json_file

LOWERED_DIR = Path(str(importlib.resources.files("exporter") / "lowered"))  # package data
PINS = ("executorch", "torch")  # the packages whose versions a lowering's bytes depend on


@dataclass(frozen=True)
class FoundationEntry:
    key: str  # the name programs read it by: a weight's name, or XNNPACK's SHA-256 of it
    source: str  # FORM:NAME, a tensor of the program's state (``_state``) in one of FORMS
    layout: list | None  # [scalar type, sizes, dim order], or None for XNNPACK's blobs


@dataclass(frozen=True)
class Recipe:
    versions: dict[str, str]
    # The token ids the template's constant methods hold: the base's fingerprint covers its
    # weights, not its tokenizer.
    bos_id: int | None
    stop_ids: list[int]
    template_sha256: str
    stand_in_offsets: dict[str, int]  # each stand-in LoRA tensor's offset in the template
    foundation: list[FoundationEntry]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, raw: dict) -> Recipe:
        entries = [FoundationEntry(**entry) for entry in raw["foundation"]]
        return cls(**{**raw, "foundation": entries})


Shipped = tuple[Recipe, Path]  # a recipe and its packed template


def base_key(quantization: Quantization) -> str:
    """What the lowering of a base program (every position's logits) is known by, as a
    template is by its rank and targets."""
    return f"v{TEMPLATE_VERSION}-base-full-logits{quantized_suffix(quantization)}"


def asset_stem(template_key: str, fingerprint: str, max_context: int) -> str:
    return f"{template_key}-{fingerprint[:16]}-c{max_context}"


def pinned_versions() -> dict[str, str]:
    """Without a local label: torch 2.13.0+cpu and a CUDA build of 2.13.0 lower alike (and
    the unpacking checks its bytes either way)."""
    return {name: importlib.metadata.version(name).split("+")[0] for name in PINS}


def find(template_key: str, base: BaseModel, fingerprint: str, max_context: int) -> Shipped | None:
    """The shipped recipe and packed template for this template of this base (its weights
    and its tokenizer's ids), if the package has one made under today's ExecuTorch and torch."""
    stem = asset_stem(template_key, fingerprint, max_context)
    recipe_path, packed = LOWERED_DIR / f"{stem}.json", LOWERED_DIR / f"{stem}.pte.xz"
    if not (recipe_path.is_file() and packed.is_file()):
        return None
    try:
        recipe = Recipe.from_json(read_json_file(recipe_path))
    except (ArtifactError, KeyError, TypeError):
        return None  # a damaged install: lower instead
    fits = (recipe.bos_id, recipe.stop_ids) == (base.tokenizer.bos_id, base.tokenizer.stop_ids)
    return (recipe, packed) if fits and recipe.versions == pinned_versions() else None


def restore_template(recipe: Recipe, packed: Path, stand_ins: Weights, out: Path) -> bool:
    """Write the lowered template: the packed bytes with the stand-ins put back. False,
    writing nothing, if the result is not the template that was lowered."""
    if stand_ins.keys() != recipe.stand_in_offsets.keys():
        return False
    try:
        program = bytearray(lzma.decompress(packed.read_bytes()))
    except lzma.LZMAError:
        return False
    for name, offset in recipe.stand_in_offsets.items():
        data = fp32_bytes(stand_ins[name])
        program[offset : offset + len(data)] = data
    if _digest(program) != recipe.template_sha256:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, bytes(program))
    return True


def write_foundation(
    recipe: Recipe, base: BaseModel, max_context: int, quantization: Quantization, out: Path
) -> bool:
    """Write the foundation a lowering of this base writes. False, writing nothing, if an
    entry XNNPACK names by its bytes does not hash to its name."""
    from executorch.exir._serialize.data_serializer import DataEntry, DataPayload
    from executorch.exir.scalar_type import ScalarType
    from executorch.exir.tensor_layout import TensorLayout
    from executorch.extension.flat_tensor.serialize.serialize import FlatTensorSerializer

    state = _state(base, max_context, quantization)
    buffers: list[bytes] = []
    index_of: dict[str, int] = {}  # a source's buffer, shared as the lowering shares it
    named: dict[str, DataEntry] = {}
    for entry in recipe.foundation:
        if entry.source not in index_of:
            data = _source_bytes(entry.source, state)
            if data is None:
                return False
            index_of[entry.source] = len(buffers)
            buffers.append(data)
        data = buffers[index_of[entry.source]]
        if _names_its_bytes(entry.key) and _digest(data) != entry.key.removeprefix("scale_"):
            return False
        layout = None
        if entry.layout is not None:
            scalar_type, sizes, dim_order = entry.layout
            layout = TensorLayout(ScalarType(scalar_type), sizes, dim_order)
        named[entry.key] = DataEntry(index_of[entry.source], 1, layout)
    cord = FlatTensorSerializer().serialize(DataPayload(buffers=buffers, named_data=named))
    write_atomic(out, cord.write_to_file)
    return True


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _names_its_bytes(key: str) -> bool:
    """XNNPACK names a weight (and a weight's scales, ``scale_…``) by the SHA-256 of its
    bytes; other entries are named by the weight's name."""
    digest = key.removeprefix("scale_")
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def _state(base: BaseModel, max_context: int, quantization: Quantization) -> Weights:
    """The tensors a foundation entry can come from, by name: the base's weights and rotary
    tables, quantized (and taken apart) as a program of ``quantization`` holds them."""
    if quantization == FP32:  # as the base has them: no model to build
        cos, sin = base.rope.tables(max_context)
        return {**base.weights, "rope.freqs_cos": cos, "rope.freqs_sin": sin}
    from exporter.lower import ProgramSpec, program_state

    spec = ProgramSpec(base.shape, base.rope, max_context, 0, None, (), quantization=quantization)
    return program_state(spec, dict(base.weights))


def _bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().contiguous().view(torch.uint8).numpy().tobytes()


def _qc4w(tensor: torch.Tensor) -> bytes:
    """int4 values (held in int8) packed two to a byte, as XNNPACK serialises them."""
    from executorch.backends.xnnpack.operators.node_visitor import NodeVisitor

    return _bytes(NodeVisitor.convert_to_qc4w(tensor))


# How an entry's bytes come from a tensor: as it is, as bfloat16 (XNNPACK's group scales),
# or as packed int4 (XNNPACK's 4-bit weights).
FORMS = {"raw": _bytes, "bf16": lambda t: _bytes(t.to(torch.bfloat16)), "qc4w": _qc4w}


def _forms_of(tensor: torch.Tensor) -> list[str]:
    if tensor.is_floating_point():
        return ["raw", "bf16"]
    in_int4 = tensor.dtype == torch.int8 and -8 <= int(tensor.min()) and int(tensor.max()) <= 7
    return ["raw", "qc4w"] if in_int4 and tensor.dim() == 2 else ["raw"]


def _source_bytes(source: str, state: Weights) -> bytes | None:
    form, _, name = source.partition(":")
    if form not in FORMS or name not in state:
        return None
    try:
        return FORMS[form](state[name])
    except (AssertionError, RuntimeError):  # not a tensor this form takes (qc4w: int4 only)
        return None


def make_recipe(
    template: Path,
    foundation: Path,
    stand_ins: Weights,
    base: BaseModel,
    max_context: int,
    quantization: Quantization,
) -> tuple[Recipe, bytes]:
    """The recipe and the packed template (xz, stand-ins zeroed) from a real lowering's
    template and foundation."""
    from executorch.exir._serialize._cord import Cord
    from executorch.extension.flat_tensor.serialize.serialize import FlatTensorSerializer

    program = template.read_bytes()
    olds = {name: fp32_bytes(stand_in) for name, stand_in in stand_ins.items()}
    starts = aligned_starts(program, olds)
    if any(len(found) != 1 for found in starts.values()):
        raise ValueError(f"{template}: its stand-ins are not each found once")
    packed = bytearray(program)
    for name, (offset,) in starts.items():
        packed[offset : offset + len(olds[name])] = bytes(len(olds[name]))

    by_hash = {
        _digest(FORMS[form](tensor)): f"{form}:{name}"
        for name, tensor in _state(base, max_context, quantization).items()
        for form in _forms_of(tensor)
    }
    payload = FlatTensorSerializer().deserialize(Cord(foundation.read_bytes()))
    entries = []
    for key, entry in payload.named_data.items():
        digest = _digest(payload.buffers[entry.buffer_index])
        if digest not in by_hash:
            raise ValueError(f"{foundation}: entry {key} is no weight of the base")
        layout = entry.tensor_layout
        if layout is not None:
            layout = [int(layout.scalar_type), list(layout.sizes), list(layout.dim_order)]
        entries.append(FoundationEntry(key, by_hash[digest], layout))
    recipe = Recipe(
        pinned_versions(),
        base.tokenizer.bos_id,
        list(base.tokenizer.stop_ids),
        _digest(program),
        {name: offset for name, (offset,) in sorted(starts.items())},
        entries,
    )
    return recipe, lzma.compress(bytes(packed), preset=9)


def main(argv: list[str] | None = None) -> int:
    """Pack the template a ``lora-export`` folder holds for an adapter's rank and targets
    (or, with ``--base-program``, its base program), with the folder's foundation, into the
    package's shipped lowerings."""
    import argparse

    from exporter.adapter import load_adapter
    from exporter.base import load_base
    from lora_tui.format import BASE_PROGRAM, Manifest

    parser = argparse.ArgumentParser(prog="python -m exporter.prebuilt", description=main.__doc__)
    parser.add_argument("out", type=Path, help="a folder lora-export wrote")
    parser.add_argument("base", type=Path, help="the base it was exported from")
    parser.add_argument("adapter", type=Path, nargs="?", help="an adapter of the template's shape")
    parser.add_argument("--base-program", action="store_true", help="pack its base program")
    args = parser.parse_args(argv)
    if (args.adapter is None) != args.base_program:
        parser.error("give an adapter, or --base-program")
    manifest = Manifest.read(args.out)
    base = load_base(args.base)
    if args.base_program:
        program, stand_ins = Path(manifest.programs[BASE_PROGRAM].file), {}
        key = base_key(manifest.quantized)
    else:
        adapter = load_adapter(args.adapter.name, args.adapter, base.shape)
        program, stand_ins = template_for(adapter, manifest.quantized)
        key = program.stem
    recipe, packed = make_recipe(
        args.out / program,
        args.out / manifest.foundation_file,
        stand_ins,
        base,
        manifest.max_context,
        manifest.quantized,
    )
    stem = asset_stem(key, manifest.base_fingerprint, manifest.max_context)
    LOWERED_DIR.mkdir(exist_ok=True)
    write_bytes_atomic(LOWERED_DIR / f"{stem}.pte.xz", packed)
    write_bytes_atomic(LOWERED_DIR / f"{stem}.json", recipe.to_json().encode())
    print(f"{LOWERED_DIR / stem}.{{json,pte.xz}}: {len(packed):,} bytes packed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
