"""The manifest lora-export writes beside its programs: which base, which adapters (rank,
targets, hashes), the quantization and the foundation's id. It is optional extra
information: a program without one still opens."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lora_tui.format.errors import ArtifactError, quoted
from lora_tui.format.program import FORMAT_VERSION, MANIFEST_FILE
from lora_tui.format.sizes import PROJECTION_NAMES, SHAPE_SIZES


@dataclass(frozen=True)
class Quantization:
    """How the foundation's weights are stored; every program over it shares this.

    ``none`` keeps fp32. ``8da4w`` is what ExecuTorch's LoRA demo ships: linear weights int4
    in groups of ``group_size`` with int8 dynamic activations, the token embeddings int8 per
    row, and the LoRA A/B weights fp32 (torchao's filter in ExecuTorch leaves them).
    ``8da8w`` is the same with int8 linear weights, one scale per output channel (XNNPACK's
    int8 kernels take no groups), as ExecuTorch's ``quantize(..., "8da8w", 0)`` makes them."""

    mode: str = "none"
    group_size: int | None = None  # input columns per weight scale; 0: one per output channel

    @classmethod
    def named(cls, mode: str, group_size: int | None = None) -> Quantization:
        """What ``--quantize MODE [--group-size N]`` asks for, each mode's groups by default."""
        if mode == "none":
            return FP32
        if group_size is None:
            group_size = DEFAULT_GROUP_SIZE if mode == "8da4w" else PER_CHANNEL
        return cls(mode, group_size)

    @property
    def label(self) -> str:
        """As the panes and reports show it: ``fp32``, ``8da4w g32``, ``8da8w``."""
        if self.mode == "none":
            return "fp32"
        return f"{self.mode} g{self.group_size}" if self.group_size else self.mode

    @property
    def slug(self) -> str:
        """As file names carry it: ``8da4wg32``, ``8da8w``."""
        return self.label.replace(" ", "")

    @classmethod
    def from_json(cls, raw: object) -> Quantization:
        if not isinstance(raw, dict) or raw.get("mode") not in QUANTIZE_MODES:
            raise ArtifactError(f"unknown quantization {raw!r}")
        return cls(raw["mode"], raw.get("group_size"))


QUANTIZE_MODES = ("none", "8da4w", "8da8w")
FP32 = Quantization()
DEFAULT_GROUP_SIZE = 32  # 8da4w's, as ExecuTorch's LoRA demo; XNNPACK needs at least 32
PER_CHANNEL = 0  # ExecuTorch's group size for one scale per output channel


@dataclass
class ProgramEntry:
    file: str
    kind: str  # "adapter" or "base"
    size_bytes: int
    rank: int | None = None
    alpha: float | None = None
    use_rslora: bool = False
    target_modules: list[str] = field(default_factory=list)
    source: str | None = None
    source_sha256: str | None = None
    adapter_size_bytes: int | None = None
    sha256: str | None = None  # of the .pte itself, so a damaged copy is refused
    # A training run's checkpoint (``checkpoint-200/``): its step. Absent for any other
    # program, so folders without checkpoints are written as they were before it.
    step: int | None = None
    # An adapter's lora_B tensors in the .pte: [byte offset, fp32 element count] each, so
    # the program can be made at another strength (``scaling.py``). Absent before it existed.
    lora_b: list[list[int]] | None = None
    scale: float | None = None  # its lora_B multiplied by this (``--scale``); None: 1, as trained

    def checkpoint_of(self, name: str) -> tuple[str, int] | None:
        """(the run's adapter name, the step) when this program is a checkpoint of a run:
        ``nobel-step200`` is ("nobel", 200); None for any other program."""
        if self.step is None:
            return None
        suffix = f"{CHECKPOINT_SEPARATOR}{self.step}"
        return (name.removesuffix(suffix) if name.endswith(suffix) else name), self.step


# A checkpoint's program is ``NAME-stepN``: file-safe, and leaves ``@`` free for scales.
CHECKPOINT_SEPARATOR = "-step"


def checkpoint_program_name(adapter: str, step: int) -> str:
    """The program (and file) name of a run's checkpoint: ``nobel-step200``."""
    return f"{adapter}{CHECKPOINT_SEPARATOR}{step}"


def display_name(adapter: str, step: int | None) -> str:
    """How a checkpoint reads in a pane or a report: ``nobel step 200``."""
    return adapter if step is None else f"{adapter} step {step}"


@dataclass
class Manifest:
    base_source: str
    base_fingerprint: str  # hash of the base's shape and weights
    foundation_id: int  # every program built over this foundation returns it
    foundation_file: str
    foundation_sha256: str  # hash of the .ptd file itself
    foundation_size_bytes: int
    shape: dict[str, Any]
    max_context: int
    tokenizer_file: str
    chat_template: str | None
    bos_id: int | None
    stop_ids: list[int]
    programs: dict[str, ProgramEntry] = field(default_factory=dict)
    format: int = FORMAT_VERSION
    # Absent in folders from before quantization, which are all fp32.
    quantization: dict[str, Any] = field(default_factory=lambda: asdict(FP32))

    @property
    def quantized(self) -> Quantization:
        return Quantization.from_json(self.quantization)

    def to_json(self) -> str:
        raw = asdict(self)
        for entry in raw["programs"].values():
            if entry["step"] is None:  # as before checkpoints: older readers take it
                del entry["step"]
        return json.dumps(raw, indent=2, sort_keys=False) + "\n"

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (not a lora-export output folder)")
        raw = read_json_file(path)
        if not isinstance(raw, dict):
            raise ArtifactError(f"{path}: damaged manifest (not a JSON object)")
        version = raw.get("format")
        if version != FORMAT_VERSION:
            raise ArtifactError(
                f"{path}: written by another lora-export (format {version}, this one reads "
                f"{FORMAT_VERSION}); export the folder again with this version"
            )
        try:
            programs = {name: ProgramEntry(**entry) for name, entry in raw.pop("programs").items()}
            manifest = cls(**raw, programs=programs)
        except (TypeError, KeyError, AttributeError) as err:
            raise ArtifactError(f"{path}: damaged manifest ({err})") from None
        _check_types(manifest, path)
        return manifest

    def program_named(self, file_name: str) -> tuple[str, ProgramEntry] | None:
        for name, entry in self.programs.items():
            if entry.file == file_name:
                return name, entry
        return None


def _check_types(manifest: Manifest, path: Path) -> None:
    """Every value of the type lora-export writes: the manifest is a stranger's file too, and
    a size of "48" or an alpha of NaN would otherwise fail later, far from here."""
    checks = [("", asdict(manifest), _MANIFEST_FIELDS)] + [
        (f"programs[{quoted(name)}].", asdict(entry), _PROGRAM_FIELDS)
        for name, entry in manifest.programs.items()
    ]
    for prefix, values, kinds in checks:
        for key, fits in kinds.items():
            if not fits(values[key]):
                raise ArtifactError(
                    f"{path}: damaged manifest ({prefix}{key} is {quoted(values[key])})"
                )


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive(value: Any) -> bool:
    return _count(value) and value > 0


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _optional(kind: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or kind(value)


def _location(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(map(_count, value))


def _shape(value: Any) -> bool:
    return isinstance(value, dict) and all(_positive(value.get(k)) for k in SHAPE_SIZES)


def _quantization(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("mode") in QUANTIZE_MODES
        and _optional(_count)(value.get("group_size"))
    )


_MANIFEST_FIELDS: dict[str, Callable[[Any], bool]] = {
    "base_source": _text,
    "base_fingerprint": _text,
    "foundation_id": _count,
    "foundation_file": _text,
    "foundation_sha256": _text,
    "foundation_size_bytes": _count,
    "shape": _shape,
    "max_context": _positive,
    "tokenizer_file": _text,
    "chat_template": _optional(_text),
    "bos_id": _optional(_count),
    "stop_ids": lambda value: isinstance(value, list) and all(_count(i) for i in value),
    "quantization": _quantization,
}
_PROGRAM_FIELDS: dict[str, Callable[[Any], bool]] = {
    "file": _text,
    "kind": lambda value: value in ("adapter", "base"),
    "size_bytes": _count,
    "rank": _optional(_positive),
    "alpha": _optional(_finite),
    "use_rslora": lambda value: isinstance(value, bool),
    "target_modules": lambda value: (
        isinstance(value, list) and all(t in PROJECTION_NAMES for t in value)
    ),
    "source": _optional(_text),
    "source_sha256": _optional(_text),
    "adapter_size_bytes": _optional(_count),
    "sha256": _optional(_text),
    "step": _optional(_count),
    "lora_b": _optional(lambda value: isinstance(value, list) and all(map(_location, value))),
    "scale": _optional(_finite),
}


def foundation_id(
    base_fingerprint: str, max_context: int, quantization: Quantization = FP32
) -> int:
    """A 60-bit id of everything that decides the .ptd's contents and the programs' inputs,
    small enough for int64. A program of another quantization has another id, so it is
    refused over this foundation as one from another base is."""
    key = f"{base_fingerprint}:{max_context}:format{FORMAT_VERSION}"
    if quantization != FP32:  # fp32 keeps the id it had before quantization existed
        key += f":{quantization.mode}:g{quantization.group_size}"
    return int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: unreadable ({err})") from None
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
