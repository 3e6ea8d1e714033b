"""One export run: read and check every input first, build in a staging folder, then publish.

Nothing reaches ``OUT_DIR`` until every program is built; files move in with renames and
the manifest moves last, so an interrupted or failed run leaves the folder as it was.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import torch

from exporter import prebuilt
from exporter.adapter import Adapter, load_adapter, source_sha256
from exporter.base import BaseModel, load_base
from exporter.errors import ExportError
from exporter.lower import ProgramSpec, lower_program
from exporter.splice import (
    TEMPLATES_DIR,
    SpliceError,
    TemplatePlan,
    Weights,
    fill,
    plan_template,
    template_for,
)
from lora_tui.common.files import write_atomic, write_bytes_atomic
from lora_tui.format import (
    BASE_PROGRAM,
    FOUNDATION_FILE,
    FP32,
    MANIFEST_FILE,
    TOKENIZER_FILE,
    ArtifactError,
    Manifest,
    ProgramEntry,
    Quantization,
    check_scale,
    foundation_id,
    scale_program,
    sha256_file,
)
from lora_tui.format.checkpoints import AdapterSource, adapter_sources, run_state

T = TypeVar("T")
LoraB = list[list[int]]  # [byte offset, fp32 element count] of each lora_B tensor
DEFAULT_MAX_CONTEXT = 2048  # a real conversation: ~10 ordinary turns at SmolLM2
WATCH_SECONDS = 2.0  # how often a watch looks at a run's folders: a stat per file


@dataclass
class ExportRequest:
    base: Path
    adapters: list[tuple[str, Path]]
    out: Path
    base_program: bool = False
    max_context: int = DEFAULT_MAX_CONTEXT
    quantization: Quantization = FP32
    # The base program as an adapter's template with zero LoRA (the base's logits, bit for
    # bit, and no lowering of its own), when this run fills one; else lowered. The demo's
    # choice: 20 MB instead of 0.4 MB and the same speed, for one lowering fewer.
    base_from_template: bool = False
    # Every adapter's lora_B multiplied by this (``--scale``): the adapter at another
    # strength, recorded in its manifest entry. The base program is the base at any scale.
    scale: float = 1.0


@dataclass
class ExportResult:
    manifest: Manifest
    built: list[str]  # program names written in this run
    reused_foundation: bool
    phase_seconds: dict[str, float] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)  # adapter name -> why it may do nothing
    notes: list[str] = field(default_factory=list)  # checkpoints skipped, one line each


class Events(Protocol):
    def phase(self, name: str, total: int) -> None: ...
    def advance(self, detail: str) -> None: ...
    def phase_done(self) -> None: ...


class SilentEvents:
    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self, detail: str) -> None:
        pass

    def phase_done(self) -> None:
        pass


def parse_adapter_arg(value: str) -> tuple[str, Path]:
    """``[NAME=]DIR``: the name defaults to the directory's name. DIR is an adapter, or a
    training run's folder of ``checkpoint-N/`` adapters (one program each)."""
    name, sep, directory = value.partition("=")
    path = Path(directory if sep else value)
    name = name if sep else path.resolve().name
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ExportError(
            f"{value}: adapter name '{name}' must be letters, digits, '-', '_' or '.'"
        )
    return name, path


def run_export(request: ExportRequest, events: Events | None = None) -> ExportResult:
    sources, notes = _adapter_sources(request)
    _check_request(request, sources)
    return _Export(request, events or SilentEvents()).run(sources, notes)


def watch_export(
    request: ExportRequest,
    exported: Callable[[ExportResult], None],
    failed: Callable[[ArtifactError], None],
    stop: threading.Event,
    interval: float = WATCH_SECONDS,
    events: Events | None = None,
) -> None:
    """Export, then export again each time a training run's folder changes (a checkpoint
    completed), until ``stop`` is set: the base is read and each template planned once, so
    a new checkpoint costs its read and a fill. The first export's errors are raised as
    ``run_export``'s are; a later one's go to ``failed``, and the watch goes on (the next
    change is tried again)."""
    export = _Export(request, events or SilentEvents())
    seen = None
    while True:
        now = [run_state(path) for _, path in request.adapters]
        if now != seen:
            try:
                sources, notes = _adapter_sources(request)
                _check_request(request, sources)
                exported(export.run(sources, notes))
            except ArtifactError as err:
                if seen is None:
                    raise
                failed(err)
            seen = now
        if stop.wait(interval):
            return


def _adapter_sources(request: ExportRequest) -> tuple[list[AdapterSource], list[str]]:
    """Every program each ``--adapter`` asks for: one, or a run's checkpoints; and a note
    for each checkpoint that is not complete yet."""
    sources: list[AdapterSource] = []
    notes: list[str] = []
    for name, path in request.adapters:
        found, skipped = adapter_sources(name, path)
        sources += found
        notes += skipped
    return sources, notes


class _Export:
    """One run of lora-export: read, lower or fill each program into a staging folder, then
    publish it whole. Each phase is timed and reported to ``events``."""

    def __init__(self, request: ExportRequest, events: Events) -> None:
        self.request, self.events = request, events
        self.timings: dict[str, float] = {}
        # A template this run filled, its stand-ins, and the adapter it was filled for.
        self.filled: tuple[Path, Weights, Adapter] | None = None
        # Kept from run to run (a watch runs again on each new checkpoint): the base, its
        # fingerprint, and the stand-ins and plan of each template, made once however many
        # checkpoints fill it.
        self.base_read: tuple[BaseModel, str] | None = None
        self.stand_ins: dict[Path, Weights] = {}
        self.plans: Plans = {}

    def timed(self, name: str, total: int, work: Callable[[], T]) -> T:
        self.events.phase(name, total)
        started = time.perf_counter()
        result = work()
        self.timings[name] = time.perf_counter() - started
        self.events.phase_done()
        return result

    def run(self, sources: list[AdapterSource], notes: list[str]) -> ExportResult:
        request = self.request
        self.timings, self.filled = {}, None
        if self.base_read is None:
            base = self.timed("read base", 1, lambda: load_base(request.base))
            self.base_read = base, self.timed("fingerprint base", 1, base.fingerprint)
        base, fingerprint = self.base, self.fingerprint = self.base_read
        existing = self.existing = _existing_manifest(request, base, fingerprint)
        self.found_id = foundation_id(fingerprint, request.max_context, request.quantization)
        wanted = sources
        if existing is not None:
            # Programs already built from the same source (at the same scale) are kept as
            # they are, their adapters not even read: a run's old checkpoints cost a hash each.
            wanted = [
                s
                for s in wanted
                if not _up_to_date(existing, s.name, s.path, request.out, request.scale)
            ]
        adapters = self.timed(
            "read adapters",
            len(wanted),
            lambda: [_load_one(source, base, self.events) for source in wanted],
        )
        programs: list[tuple[str, Adapter | None]] = [(a.name, a) for a in adapters]
        if request.base_program and not (
            existing is not None and _up_to_date(existing, BASE_PROGRAM, None, request.out)
        ):
            programs.append((BASE_PROGRAM, None))
        request.out.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=".lora-export-", dir=request.out))
        try:
            entries = {name: self.build(name, adapter) for name, adapter in programs}
            manifest = _make_manifest(
                request, base, fingerprint, self.found_id, self.staging, existing, entries
            )
            self.timed(
                "publish", 1, lambda: _publish(self.staging, request.out, manifest, base, existing)
            )
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
        doubts = {a.name: a.warning for a in adapters if a.warning}
        built = [n for n, _ in programs]
        return ExportResult(manifest, built, existing is not None, self.timings, doubts, notes)

    def build(self, name: str, adapter: Adapter | None) -> ProgramEntry:
        """One program into the staging folder: the base's lowered, an adapter's filled into
        a template for its rank and targets (lowered first if no folder has one)."""
        request, base = self.request, self.base
        spec = ProgramSpec(
            shape=base.shape,
            rope=base.rope,
            max_context=request.max_context,
            foundation_id=self.found_id,
            bos_id=base.tokenizer.bos_id,
            stop_ids=tuple(base.tokenizer.stop_ids),
            lora_rank=adapter.rank if adapter else None,
            lora_targets=tuple(adapter.targets) if adapter else (),
            quantization=request.quantization,
            full_logits=adapter is None,  # the base scores replies (lora_tui/engine/departure.py)
        )
        pte = self.staging / f"{name}.pte"
        if adapter is None:
            # The lowering the package ships for this base (every position's logits), else
            # a fill of a template (the last position's only), else a lowering of its own.
            if self.unpack(pte, {}, prebuilt.base_key(request.quantization), f"{name}.pte"):
                return _entry(name, None, pte)
            if request.base_from_template and (lora_of := self._fill_base(pte)) is not None:
                return _entry(name, None, pte, lora_of)
            self.lower(f"{name}.pte", spec, base.weights, pte)
            return _entry(name, None, pte)
        template, stand_ins = template_for(adapter, request.quantization, self.stand_ins)
        # Only a folder whose manifest checked out may lend its templates.
        lendable = [self.staging / template]
        if self.existing is not None:
            lendable.append(request.out / template)
        scale = request.scale

        def fill_lent() -> tuple[Path, LoraB] | None:
            for lent in lendable:
                lora_b = _fill(lent, stand_ins, adapter.weights, pte, self.plans, scale)
                if lora_b is not None:
                    return lent, lora_b
            return None

        filled = self.timed(f"fill {name}.pte", 1, fill_lent)
        if filled is None:
            lowered = self.staging / template
            if not self.unpack(lowered, stand_ins, lowered.stem, f"template {lowered.stem}"):
                self.lower(
                    f"template {template.stem}", spec, {**base.weights, **stand_ins}, lowered
                )
            fill_now = partial(_fill, lowered, stand_ins, adapter.weights, pte, self.plans, scale)
            if (lora_b := self.timed(f"fill {name}.pte", 1, fill_now)) is None:
                raise ExportError(f"{name}: the lowered template could not be filled")
            filled = lowered, lora_b
        self.filled = filled[0], stand_ins, adapter
        return _entry(name, adapter, pte, lora_b=filled[1], scale=scale)

    def _fill_base(self, pte: Path) -> Adapter | None:
        """The base program from a template this run filled, with every LoRA B zero: its
        LoRA branches add exactly 0.0, so its logits are the base's. Returns the adapter
        whose template it is (None if there is none to fill)."""
        if self.filled is None:
            return None
        template, stand_ins, adapter = self.filled
        zero_b = {n: torch.zeros_like(w) if ".lora_b." in n else w for n, w in stand_ins.items()}
        filled = self.timed(
            f"fill {pte.name}", 1, lambda: _fill(template, stand_ins, zero_b, pte, self.plans)
        )
        return adapter if filled is not None else None

    def unpack(self, template: Path, stand_ins: Weights, key: str, label: str) -> bool:
        """The program ``key`` names (a template, or the base program) and the foundation,
        if this folder has none yet, from the lowering the package ships for this base, if
        it has one: seconds instead of minutes."""
        request = self.request
        shipped = prebuilt.find(key, self.base, self.fingerprint, request.max_context)
        if shipped is None:
            return False
        recipe, packed = shipped
        foundation = self.staging / FOUNDATION_FILE
        needs_foundation = self.existing is None and not foundation.exists()

        def unpack() -> bool:
            if not prebuilt.restore_template(recipe, packed, stand_ins, template):
                return False
            if needs_foundation and not prebuilt.write_foundation(
                recipe, self.base, request.max_context, request.quantization, foundation
            ):
                template.unlink()
                return False
            return True

        return self.timed(f"unpack {label}", 1, unpack)

    def lower(self, label: str, spec: ProgramSpec, weights: Weights, pte: Path) -> None:
        lowered = self.timed(
            f"export {label}", 4, lambda: lower_program(spec, weights, self.events.advance)
        )
        pte.parent.mkdir(exist_ok=True)
        lowered.write_program(pte)
        foundation = self.staging / FOUNDATION_FILE
        if self.existing is None and not foundation.exists():
            self.timed("write foundation.ptd", 1, lambda: lowered.write_foundation(foundation))


# A template file as it was when read (its inode, which publishing it keeps, size and
# mtime) -> its bytes and plan.
Plans = dict[tuple[int, int, int, int], tuple[bytes, TemplatePlan]]


def _fill(
    template: Path,
    stand_ins: Weights,
    weights: Weights,
    pte: Path,
    plans: Plans,
    scale: float = 1.0,
) -> LoraB | None:
    """Write ``pte`` from ``template`` with these LoRA weights, lora_B times ``scale``;
    returns where its lora_B tensors are, or None if it cannot. The template is read and
    planned once per run (``plans``), not once per adapter."""
    try:
        seen = template.stat()
    except OSError:
        return None
    key = (seen.st_dev, seen.st_ino, seen.st_size, seen.st_mtime_ns)
    try:
        if key not in plans:
            data = template.read_bytes()
            plans[key] = data, plan_template(data, stand_ins)
        data, plan = plans[key]
        program, lora_b = fill(data, plan, weights)
    except (SpliceError, OSError):
        return None
    write_bytes_atomic(pte, scale_program(program, lora_b, scale) if lora_b else program)
    return lora_b


def _check_request(request: ExportRequest, sources: list[AdapterSource]) -> None:
    names = [source.name for source in sources]
    if not names and not request.base_program:
        raise ExportError("nothing to export: give at least one --adapter or --base-program")
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ExportError(
            f"adapter name '{sorted(duplicates)[0]}' is given twice (a run's checkpoints are "
            "NAME-stepN); use NAME=DIR"
        )
    if request.base_program and BASE_PROGRAM in names:
        raise ExportError("adapter name 'base' is reserved for --base-program; use NAME=DIR")
    if request.max_context < 16:
        raise ExportError(f"--max-context {request.max_context}: must be at least 16")
    quantization = request.quantization
    if quantization.mode == "8da4w" and (quantization.group_size or 0) < 32:
        raise ExportError(f"--group-size {quantization.group_size}: XNNPACK needs at least 32")
    if quantization.mode == "8da8w" and quantization.group_size:
        raise ExportError(
            f"--group-size {quantization.group_size}: 8da8w keeps one scale per output "
            "channel (XNNPACK has no int8 weights in groups)"
        )
    try:
        check_scale(request.scale)
    except ArtifactError as err:
        raise ExportError(f"--{err}") from None  # "--scale nan: not a finite number"
    if request.out.exists() and not request.out.is_dir():
        raise ExportError(f"{request.out}: exists and is not a directory")


def _load_one(source: AdapterSource, base: BaseModel, events: Events) -> Adapter:
    adapter = load_adapter(source.name, source.path, base.shape)
    adapter.step = source.step
    events.advance(source.name)
    return adapter


def _existing_manifest(
    request: ExportRequest, base: BaseModel, fingerprint: str
) -> Manifest | None:
    out = request.out
    foundation = out / FOUNDATION_FILE
    if not (out / MANIFEST_FILE).exists():
        if foundation.exists():
            raise ExportError(
                f"{foundation}: has no {MANIFEST_FILE} beside it, so its base is unknown; "
                "remove it or choose another --out"
            )
        return None
    existing = Manifest.read(out)
    if existing.base_fingerprint != fingerprint:
        raise ExportError(
            f"{foundation}: built from a different base ({existing.base_source}); "
            "choose another --out"
        )
    if existing.quantized != request.quantization:
        raise ExportError(
            f"{foundation}: its programs are {existing.quantized.label}, not "
            f"{request.quantization.label}; every program over one foundation shares its "
            "quantization, so use the same --quantize or another --out"
        )
    if existing.max_context != request.max_context:
        raise ExportError(
            f"{foundation}: built with --max-context {existing.max_context}, "
            f"not {request.max_context}; use the same value or another --out"
        )
    if not foundation.is_file() or foundation.stat().st_size != existing.foundation_size_bytes:
        raise ExportError(f"{foundation}: missing or truncated; remove {out} and export again")
    if sha256_file(foundation) != existing.foundation_sha256:
        raise ExportError(
            f"{foundation}: does not match its manifest; remove {out} and export again"
        )
    return existing


def _up_to_date(
    existing: Manifest, name: str, source: Path | None, out: Path, scale: float = 1.0
) -> bool:
    """Whether ``out`` has this program, whole, built from the adapter files in ``source``
    as they are now (``None``: the base program), at ``scale``."""
    entry = existing.programs.get(name)
    if entry is None or not (out / entry.file).is_file():
        return False
    if (out / entry.file).stat().st_size != entry.size_bytes:
        return False
    if entry.sha256 and sha256_file(out / entry.file) != entry.sha256:
        return False  # damaged since: build it again
    if source is None or entry.source_sha256 is None:
        return source is None and entry.source_sha256 is None
    if entry.lora_b is None or (entry.scale or 1.0) != scale:
        return False  # another strength, or from before lora_B was located: fill it again
    try:
        return entry.source_sha256 == source_sha256(source)
    except OSError:
        return False  # read again, so the reader says what is wrong with it


def _entry(
    name: str,
    adapter: Adapter | None,
    pte: Path,
    lora_of: Adapter | None = None,
    lora_b: LoraB | None = None,
    scale: float = 1.0,
) -> ProgramEntry:
    """``lora_of``: a base program filled from this adapter's template, which carries its
    rank's (zero) LoRA weights, so its memory is told right. ``lora_b``: where an adapter's
    lora_B tensors are in ``pte``; ``scale``: what they were multiplied by."""
    written = {"file": f"{name}.pte", "size_bytes": pte.stat().st_size, "sha256": sha256_file(pte)}
    if adapter is None:
        lora = {"rank": lora_of.rank, "target_modules": list(lora_of.targets)} if lora_of else {}
        return ProgramEntry(kind="base", **lora, **written)
    return ProgramEntry(
        kind="adapter",
        adapter_size_bytes=adapter.size_bytes,
        **written,
        **adapter.manifest_entry(),
        lora_b=lora_b,
        scale=None if scale == 1.0 else scale,
    )


def _make_manifest(
    request: ExportRequest,
    base: BaseModel,
    fingerprint: str,
    found_id: int,
    staging: Path,
    existing: Manifest | None,
    entries: dict[str, ProgramEntry],
) -> Manifest:
    if existing is not None:
        existing.programs.update(entries)
        return existing
    foundation = staging / FOUNDATION_FILE
    return Manifest(
        base_source=str(request.base),
        base_fingerprint=fingerprint,
        foundation_id=found_id,
        foundation_file=FOUNDATION_FILE,
        foundation_sha256=sha256_file(foundation),
        foundation_size_bytes=foundation.stat().st_size,
        shape=base.shape.as_dict(),
        max_context=request.max_context,
        tokenizer_file=TOKENIZER_FILE,
        chat_template=base.tokenizer.chat_template,
        bos_id=base.tokenizer.bos_id,
        stop_ids=list(base.tokenizer.stop_ids),
        programs=entries,
        quantization=asdict(request.quantization),
    )


def _publish(
    staging: Path, out: Path, manifest: Manifest, base: BaseModel, existing: Manifest | None
) -> None:
    """Move the staged files in; the manifest goes last, so it never names a missing file."""
    if existing is None:
        write_bytes_atomic(out / TOKENIZER_FILE, base.tokenizer.tokenizer_json)
        for file_name, data in base.tokenizer.extra_files.items():
            write_bytes_atomic(out / file_name, data)
    templates = staging / TEMPLATES_DIR
    if templates.is_dir():
        (out / TEMPLATES_DIR).mkdir(exist_ok=True)
        for staged in templates.iterdir():
            staged.replace(out / TEMPLATES_DIR / staged.name)
        templates.rmdir()
    for staged in sorted(staging.iterdir()):
        staged.replace(out / staged.name)
    write_atomic(out / MANIFEST_FILE, lambda f: f.write(manifest.to_json().encode("utf-8")))
