"""An adapter opened at another LoRA strength: its program with lora_B scaled, made in the
tool's cache (never in the user's export folder) and opened as a program of its own.

A copy is ``<cache>/scaled/<source SHA-256>/<name> ×<scale>.pte``, so its stem is the name
its pane shows ("nobel ×0.5") and the same source at the same scale is made once. Beside it
a ``.json`` says where it came from: the source program, the source's SHA-256, the scale and
the copy's own SHA-256. That is how a host knows the copy (``scaled_entry``): it finds the
source's manifest entry beside the foundation and gives the copy that entry with the scale
applied, so the copy is checked against its own hash, and shows its rank and targets, as
its source would be.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from lora_tui.common.files import write_bytes_atomic, write_text_atomic
from lora_tui.engine.paths import cache_dir
from lora_tui.engine.types import EngineError
from lora_tui.format import (
    MANIFEST_FILE,
    ArtifactError,
    Manifest,
    ProgramEntry,
    check_scale,
    scale_label,
    scale_program,
)

SCALED_DIR = "scaled"
ORIGIN_SUFFIX = ".json"


def scaled_dir() -> Path:
    return cache_dir() / SCALED_DIR


@dataclass(frozen=True)
class ScaledOrigin:
    """Where a scaled copy came from, kept beside it."""

    source: str  # the adapter program, as an absolute path
    source_sha256: str
    scale: float
    sha256: str  # of the copy itself

    @classmethod
    def beside(cls, copy: Path) -> ScaledOrigin | None:
        """The origin of ``copy``, if it is a scaled copy in this tool's cache."""
        if copy.resolve().parent.parent != scaled_dir().resolve():
            return None
        try:
            raw = json.loads(copy.with_suffix(ORIGIN_SUFFIX).read_text(encoding="utf-8"))
            origin = cls(**raw)
        except (OSError, ValueError, TypeError):
            return None  # not ours, or damaged: the copy opens as any program would
        fields = (origin.source, origin.source_sha256, origin.sha256)
        if not all(isinstance(f, str) for f in fields) or not isinstance(origin.scale, float):
            return None
        return origin


def scaled_copy(source: Path, scale: float) -> Path:
    """The program to open for ``source`` at ``scale``: ``source`` itself at 1, else a
    copy with its lora_B scaled, made now unless the cache has it. ``EngineError`` says in
    one line why it cannot be made (a program lora-export did not describe, a bad scale)."""
    try:
        scale = check_scale(scale)
    except ArtifactError as err:
        raise EngineError(f"{source}: {err}") from None
    if (origin := ScaledOrigin.beside(source)) is not None:  # a copy at another scale again
        return scaled_copy(Path(origin.source), origin.scale * scale)
    entry = _adapter_entry(source)
    if scale == 1.0:
        return source  # the adapter as it is: the same bytes
    data = _read(source)
    source_sha256 = hashlib.sha256(data).hexdigest()
    if entry.sha256 and source_sha256 != entry.sha256:
        raise EngineError(
            f"{source}: is not the program lora-export wrote (its SHA-256 differs from the "
            "manifest's: damaged or replaced); export it again"
        )
    folder = scaled_dir() / source_sha256
    copy = folder / f"{source.stem} {scale_label(scale)}.pte"
    origin = ScaledOrigin.beside(copy) if copy.is_file() else None
    if origin is not None and origin.source_sha256 == source_sha256 and origin.scale == scale:
        if _sha256(copy) == origin.sha256:
            return copy  # made before, and whole
    assert entry.lora_b is not None  # _adapter_entry refuses an entry without
    try:
        scaled = scale_program(data, entry.lora_b, scale)
    except ArtifactError as err:
        raise EngineError(f"{source}: {err}") from None
    try:
        _private_folder(folder)
        write_bytes_atomic(copy, scaled)
        made = ScaledOrigin(
            str(source.resolve()), source_sha256, scale, hashlib.sha256(scaled).hexdigest()
        )
        # The origin last: a copy without one is not known as a scaled copy, and is made again.
        write_text_atomic(copy.with_suffix(ORIGIN_SUFFIX), json.dumps(asdict(made)) + "\n")
    except OSError as err:
        raise EngineError(f"{copy}: cannot be written ({err.strerror or err})") from None
    return copy


def scaled_entry(copy: Path, manifest: Manifest | None, foundation: Path) -> ProgramEntry | None:
    """The manifest entry of a scaled copy opened over ``foundation``: its source's, which
    must be listed in the manifest beside the foundation with the hash the copy was made
    from, with the copy's file, hash and scale. None when ``copy`` is no such copy."""
    origin = ScaledOrigin.beside(copy)
    if origin is None or manifest is None:
        return None
    source = Path(origin.source)
    found = manifest.program_named(source.name)
    if found is None or source.parent != foundation.resolve().parent:
        return None
    entry = found[1]
    if entry.sha256 != origin.source_sha256:
        return None  # the folder's program changed since: the copy is of another
    scale = (entry.scale or 1.0) * origin.scale
    return replace(entry, file=copy.name, sha256=origin.sha256, scale=scale)


def _adapter_entry(source: Path) -> ProgramEntry:
    """The source's manifest entry, which must say where its lora_B tensors are."""
    need = "scale needs a lora-export adapter program with its manifest.json beside it"
    if not source.is_file():
        raise EngineError(f"{source}: no such file")
    if not (source.parent / MANIFEST_FILE).is_file():
        raise EngineError(f"{source}: {need} (export_llm's programs have none)")
    try:
        found = Manifest.read(source.parent).program_named(source.name)
    except ArtifactError as err:
        raise EngineError(str(err)) from None
    if found is None:
        raise EngineError(f"{source}: {need}; its folder's manifest does not list it")
    entry = found[1]
    if entry.kind != "adapter":
        raise EngineError(f"{source}: the base program has no LoRA to scale")
    if not entry.lora_b:
        raise EngineError(
            f"{source}: its manifest does not say where its lora_B weights are (exported "
            "by an earlier lora-export); export it again to open it at another scale"
        )
    return entry


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise EngineError(f"{path}: unreadable ({err.strerror or err})") from None


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _private_folder(folder: Path) -> None:
    """The scaled folder and the copy's, the user's own (0700): copies of their adapters."""
    for each in (folder.parent, folder):
        each.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(each, 0o700)
