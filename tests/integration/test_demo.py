"""The demo's cache: a fresh build, reuse, stale and half-built caches, and interruption.

Runs on the tiny fixtures; the real demo differs only in the base and adapters it is given.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lora_tui.demo.build import (
    STAMP_FILE,
    DemoBuild,
    demo_folder,
    demo_quantization,
    ensure_demo,
)
from lora_tui.format import FP32, Manifest, Quantization
from tests.support.artifacts import MAX_CONTEXT, TinyArtifacts
from tests.support.programs import program_greedy
from tests.support.tiny import build_adapter


@pytest.fixture(scope="module")
def first_build(tiny_base: Path, tiny_adapters: dict[str, Path], tmp_path_factory) -> DemoBuild:
    root = tmp_path_factory.mktemp("demo")
    adapter = root / "full"
    shutil.copytree(tiny_adapters["full"], adapter)
    return build(root / "cache" / "demo", tiny_base, {"full": adapter})


@pytest.fixture(scope="module")
def built(first_build: DemoBuild) -> tuple[Path, Path]:
    """One demo build of the tiny base with one adapter: (its folder, the adapter folder)."""
    return first_build.folder, first_build.folder.parent.parent / "full"


@pytest.fixture
def demo(built: tuple[Path, Path], tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A private copy of the built demo and of its adapter, free to damage."""
    folder, adapter = built
    shutil.copytree(folder, tmp_path / "cache" / "demo")
    shutil.copytree(adapter, tmp_path / "full")
    return tmp_path / "cache" / "demo", {"full": tmp_path / "full"}


def build(folder: Path, base: Path, adapters: dict[str, Path]) -> DemoBuild:
    return ensure_demo(folder, lambda: base, adapters, max_context=MAX_CONTEXT)


def test_fresh_build_is_complete(built: tuple[Path, Path]) -> None:
    folder, _ = built
    result = DemoBuild(folder, None)
    assert [p.name for p in result.programs] == ["base.pte", "full.pte"]
    assert result.weights == folder / "foundation.ptd" and result.weights.is_file()
    assert json.loads((folder / STAMP_FILE).read_text())["adapters"].keys() == {"full"}
    assert [p.name for p in folder.parent.iterdir()] == ["demo"]  # no staging left behind


def test_the_base_is_the_template_with_zero_lora_and_gives_the_base_logits(
    first_build: DemoBuild, tiny_artifacts: TinyArtifacts
) -> None:
    """One lowering before the first answer, not two: the demo's base program is the
    adapter's template with every LoRA B zero, and answers as the lowered base does, bit
    for bit."""
    assert first_build.built is not None
    lowered = [phase for phase in first_build.built.phase_seconds if phase.startswith("export")]
    assert len(lowered) == 1 and lowered[0].startswith("export template")
    base = first_build.manifest.programs["base"]
    adapter = first_build.manifest.programs["full"]
    # Its (zero) LoRA weights are in memory as an adapter's are: the manifest says so.
    assert (base.kind, base.rank, base.target_modules) == (
        "base",
        adapter.rank,
        adapter.target_modules,
    )
    prompt = [1, 5, 9, 14, 3, 7]
    ours = program_greedy(first_build.folder / "base.pte", first_build.weights, prompt, 6)
    theirs = program_greedy(tiny_artifacts.program("base"), tiny_artifacts.foundation, prompt, 6)
    assert ours[0] == theirs[0]
    assert all(bool((a == b).all()) for a, b in zip(ours[1], theirs[1], strict=True))


def test_current_cache_is_reused(
    demo: tuple[Path, dict[str, Path]], tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, adapters = demo

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr("exporter.pipeline.run_export", fail)
    again = build(folder, tiny_base, adapters)
    assert again.built is None and [p.name for p in again.programs] == ["base.pte", "full.pte"]


def test_changed_adapter_is_rebuilt(demo: tuple[Path, dict[str, Path]], tiny_base: Path) -> None:
    folder, adapters = demo
    before = (folder / "full.pte").read_bytes()
    foundation = (folder / "foundation.ptd").stat().st_ino
    shutil.rmtree(adapters["full"])
    build_adapter(tiny_base, adapters["full"], r=8, alpha=16, targets=["q_proj"], seed=5)
    rebuilt = build(folder, tiny_base, adapters)
    assert rebuilt.built is not None and rebuilt.built.built == ["full"]  # the rest is kept
    assert (folder / "foundation.ptd").stat().st_ino == foundation
    assert (folder / "full.pte").read_bytes() != before
    assert Manifest.read(folder).programs["full"].target_modules == ["q_proj"]


@pytest.mark.parametrize("damage", ["missing program", "truncated foundation"])
def test_half_built_cache_is_rebuilt(
    demo: tuple[Path, dict[str, Path]], tiny_base: Path, damage: str
) -> None:
    folder, adapters = demo
    if damage == "missing program":
        (folder / "full.pte").unlink()
    else:
        data = (folder / "foundation.ptd").read_bytes()
        (folder / "foundation.ptd").write_bytes(data[: len(data) // 2])
    rebuilt = build(folder, tiny_base, adapters)
    assert rebuilt.built is not None
    assert (folder / "full.pte").is_file() and (folder / STAMP_FILE).is_file()


def test_interrupted_rebuild_keeps_the_old_cache_whole(
    demo: tuple[Path, dict[str, Path]], tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, adapters = demo
    (folder / STAMP_FILE).unlink()  # stale: the next run rebuilds
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("exporter.pipeline.run_export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(folder, tiny_base, adapters)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert [p.name for p in folder.parent.iterdir()] == ["demo"]


def test_a_quantized_demo_is_its_own_build(
    demo: tuple[Path, dict[str, Path]], tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--quantize 8da4w asks lora-export for 8da4w, and a current fp32 build of the same
    inputs does not pass for it; each quantization has its own cache folder."""
    folder, adapters = demo
    requests = []

    class Stop(Exception):
        pass

    def export(request, events=None):
        requests.append(request)
        raise Stop

    monkeypatch.setattr("exporter.pipeline.run_export", export)
    quantized = demo_quantization("8da4w")
    with pytest.raises(Stop):
        ensure_demo(folder, lambda: tiny_base, adapters, None, MAX_CONTEXT, quantized)
    assert requests[0].quantization == quantized == Quantization("8da4w", 32)
    assert Manifest.read(folder).quantized == FP32  # the fp32 build is left whole
    assert demo_quantization("none") == FP32
    assert demo_folder(quantized) != demo_folder(FP32)
