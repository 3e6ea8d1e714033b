"""An adapter's program at another LoRA strength, made from its bytes in well under a second.

A LoRA layer adds ``B @ (A @ x)`` to the base's output, with the adapter's own scale
(alpha/r) already folded into B by lora-export. Multiplying every lora_B tensor by ``s``
multiplies what the adapter adds by ``s``: 0 is the base, 1 the adapter as trained, 2 twice
its push. lora-export records where each lora_B tensor's fp32 data sits in the program
(``ProgramEntry.lora_b``: [byte offset, element count] pairs, found when it filled the
template), so nothing here needs to parse the flatbuffer. LoRA weights stay fp32 in every
quantization (``Quantization``'s docstring), so the same holds over 8da4w and 8da8w.

XNNPACK names each constant by the SHA-256 of its fp32 bytes, and its delegates and the
program's named-data table refer to it by that name: as ``exporter/splice.py`` does when it
fills a template, every name of a rewritten tensor is rewritten too. Names and data keep
their lengths, so no offset in the file moves.
"""

from __future__ import annotations

import hashlib
import math
import sys
from array import array
from collections.abc import Collection, Sequence

from lora_tui.format.errors import ArtifactError

FLOAT32_BYTES = 4
NAME_LENGTH = 64  # an XNNPACK constant's name: its bytes' SHA-256 in hex
_HEX_MASK = bytes(ord("h") if chr(i) in "0123456789abcdef" else ord(".") for i in range(256))
MIN_SCALE, MAX_SCALE = -4.0, 4.0  # past these an adapter's push is noise, not a strength


def check_scale(scale: float) -> float:
    """``scale`` if it is a finite number within [MIN_SCALE, MAX_SCALE]; else ``ArtifactError``."""
    if not isinstance(scale, int | float) or isinstance(scale, bool) or not math.isfinite(scale):
        raise ArtifactError(f"scale {scale!r}: not a finite number")
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ArtifactError(f"scale {scale:g}: must be between {MIN_SCALE:g} and {MAX_SCALE:g}")
    return float(scale)


def scale_label(scale: float) -> str:
    """As a pane's name carries it: ``×0.5``, ``×2``, ``×-1``. Exact (the shortest text
    that reads back as the same float), so two scales never share a label or a file name."""
    text = repr(float(scale))
    return f"×{text.removesuffix('.0')}"


def scaled_name(name: str, scale: float | None) -> str:
    """``nobel ×0.5``; the name as it is at scale 1 or with no scale."""
    return name if scale in (None, 1.0) else f"{name} {scale_label(scale)}"


def scale_program(pte: bytes, lora_b: Sequence[Sequence[int]], scale: float) -> bytes:
    """The program ``pte`` with each lora_B tensor (``[offset, count]``: its byte offset and
    its number of fp32 elements) multiplied by ``scale``. Scale 1 gives the same bytes; scale
    0 gives +0.0 everywhere, as a base program filled from a template holds."""
    scale = check_scale(scale)
    if scale == 1.0:
        return pte
    _check_locations(pte, lora_b)
    program = bytearray(pte)
    new_names: dict[bytes, bytes] = {}  # each tensor's XNNPACK name -> its scaled bytes' name
    for offset, count in lora_b:
        end = offset + count * FLOAT32_BYTES
        old = bytes(program[offset:end])
        new = _scaled(old, scale)
        program[offset:end] = new
        if new != old:
            new_names[_xnnpack_name(old)] = _xnnpack_name(new)
    return rename_constants(program, new_names)


def find_names(program: bytes | bytearray, names: Collection[bytes]) -> dict[bytes, list[int]]:
    """Where each of these XNNPACK names (64 hex digits) sits in ``program``, as one regex
    alternation of them would find them, in one pass over the file: the hex runs of 64 or
    more are found in a mask of the file (milliseconds), and only they are looked at. (An
    alternation of 210 names took 2.5 s over the demo's 20 MB program.)"""
    wanted = set(names)
    found: dict[bytes, list[int]] = {name: [] for name in wanted}
    mask = bytes(program).translate(_HEX_MASK)
    run = b"h" * NAME_LENGTH
    start = mask.find(run)
    while start != -1:
        end = mask.find(b".", start)
        end = len(mask) if end == -1 else end
        at = start
        while at + NAME_LENGTH <= end:
            name = bytes(program[at : at + NAME_LENGTH])
            if name not in wanted:
                at += 1
                continue
            found[name].append(at)
            at += NAME_LENGTH
        start = mask.find(run, end)
    return found


def rename_constants(program: bytearray, new_names: dict[bytes, bytes]) -> bytes:
    """``program`` with every occurrence of each XNNPACK name replaced by its new one."""
    for old, spots in find_names(program, new_names.keys()).items():
        for at in spots:
            program[at : at + NAME_LENGTH] = new_names[old]
    return bytes(program)


def _scaled(data: bytes, scale: float) -> bytes:
    if scale == 0.0:
        return bytes(len(data))  # +0.0 everywhere, as the base's zero lora_B (not -0.0)
    values = array("f", data)
    if sys.byteorder == "big":  # a program's tensors are little-endian
        values.byteswap()
    scaled = array("f", map(scale.__mul__, values))
    if sys.byteorder == "big":
        scaled.byteswap()
    return scaled.tobytes()


def _xnnpack_name(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()


def _check_locations(pte: bytes, lora_b: Sequence[Sequence[int]]) -> None:
    """Each location inside the file, aligned, and none overlapping another: a manifest is
    a stranger's file too, and a wrong offset would scale bytes that are not weights."""
    if not lora_b:
        raise ArtifactError("the manifest lists no lora_B tensors for this program")
    spans = []
    for location in lora_b:
        if len(location) != 2 or not all(isinstance(v, int) and v >= 0 for v in location):
            raise ArtifactError(f"lora_B location {location!r}: not [offset, count]")
        offset, count = location
        end = offset + count * FLOAT32_BYTES
        if offset % FLOAT32_BYTES or count == 0 or end > len(pte):
            raise ArtifactError(
                f"lora_B location [{offset}, {count}]: not inside this {len(pte)}-byte program"
            )
        spans.append((offset, end))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise ArtifactError(f"lora_B locations overlap at byte {start}")
