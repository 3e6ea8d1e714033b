"""A shipped lowering is made again byte for byte, and anything off falls back to lowering.

The tiny fixtures' own lowering stands in for the demo's shipped one: its template and
foundation are packed as ``python -m exporter.prebuilt`` packs the demo's, and a fresh
export of the same base and adapter must then lower nothing and write the same bytes.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

from exporter import prebuilt
from exporter.adapter import load_adapter
from exporter.base import load_base
from exporter.pipeline import ExportRequest, ExportResult, run_export
from exporter.splice import template_for
from lora_tui.format import FOUNDATION_FILE, FP32, Manifest, Quantization
from tests.support.artifacts import MAX_CONTEXT, Q8DA4W, TinyArtifacts

QUANTIZATIONS = {"fp32": FP32, "8da4w": Q8DA4W}


@pytest.fixture(scope="module", params=sorted(QUANTIZATIONS))
def lowered_folder(
    request: pytest.FixtureRequest, tiny_artifacts: TinyArtifacts, quantized: Path
) -> tuple[Path, Quantization]:
    """A folder of the tiny 'full' adapter that lowering wrote, and its quantization."""
    folder = tiny_artifacts.out if request.param == "fp32" else quantized
    return folder, QUANTIZATIONS[request.param]


@pytest.fixture(scope="module")
def shipped(
    lowered_folder: tuple[Path, Quantization],
    tiny_artifacts: TinyArtifacts,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A folder of shipped lowerings holding the tiny base's template for 'full'."""
    out, quantization = lowered_folder
    base = load_base(tiny_artifacts.base_dir)
    adapter = load_adapter("full", tiny_artifacts.adapters["full"], base.shape)
    template, stand_ins = template_for(adapter, quantization)
    recipe, packed = prebuilt.make_recipe(
        out / template, out / FOUNDATION_FILE, stand_ins, base, MAX_CONTEXT, quantization
    )
    fingerprint = Manifest.read(out).base_fingerprint
    folder = tmp_path_factory.mktemp("lowered")
    stem = prebuilt.asset_stem(template.stem, fingerprint, MAX_CONTEXT)
    (folder / f"{stem}.pte.xz").write_bytes(packed)
    (folder / f"{stem}.json").write_text(recipe.to_json())
    return folder


def export_full(artifacts: TinyArtifacts, out: Path, quantization: Quantization) -> ExportResult:
    adapters = [("full", artifacts.adapters["full"])]
    request = ExportRequest(artifacts.base_dir, adapters, out, max_context=MAX_CONTEXT)
    request.quantization = quantization
    return run_export(request)


def lowered(result: ExportResult) -> list[str]:
    return [phase for phase in result.phase_seconds if phase.startswith("export")]


def test_shipped_lowering_gives_the_lowered_files_byte_for_byte(
    tiny_artifacts: TinyArtifacts,
    lowered_folder: tuple[Path, Quantization],
    shipped: Path,
    tmp_path: Path,
    monkeypatch,
) -> None:
    theirs, quantization = lowered_folder
    monkeypatch.setattr(prebuilt, "LOWERED_DIR", shipped)
    result = export_full(tiny_artifacts, tmp_path / "out", quantization)
    assert lowered(result) == []
    assert any(phase.startswith("unpack template") for phase in result.phase_seconds)
    ours = tmp_path / "out"
    (template,) = (ours / ".templates").iterdir()
    for name in (f".templates/{template.name}", "full.pte", FOUNDATION_FILE):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    assert Manifest.read(ours).foundation_sha256 == Manifest.read(theirs).foundation_sha256


def damage(folder: Path, how: str) -> None:
    (recipe_path,) = folder.glob("*.json")
    raw = json.loads(recipe_path.read_text())
    if how == "another executorch":
        raw["versions"]["executorch"] = "0.0.1"
    elif how == "other stop tokens":  # the same weights under another tokenizer
        raw["stop_ids"] = [*raw["stop_ids"], 7]
    elif how == "truncated packing":
        (packed,) = folder.glob("*.pte.xz")
        packed.write_bytes(packed.read_bytes()[:1000])
    elif how == "damaged template":
        (packed,) = folder.glob("*.pte.xz")
        program = bytearray(lzma.decompress(packed.read_bytes()))
        program[100] ^= 0xFF
        packed.write_bytes(lzma.compress(bytes(program)))
    else:  # a foundation entry XNNPACK names by its bytes, holding another weight
        entries = raw["foundation"]
        named = [i for i, e in enumerate(entries) if e["layout"] is None]
        first, second = named[0], named[1]
        entries[first]["source"], entries[second]["source"] = (
            entries[second]["source"],
            entries[first]["source"],
        )
    recipe_path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    "how",
    [
        "another executorch",
        "other stop tokens",
        "truncated packing",
        "damaged template",
        "wrong foundation",
    ],
)
def test_a_shipped_lowering_that_does_not_fit_is_lowered_instead(
    tiny_artifacts: TinyArtifacts,
    lowered_folder: tuple[Path, Quantization],
    shipped: Path,
    tmp_path: Path,
    monkeypatch,
    how: str,
) -> None:
    theirs, quantization = lowered_folder
    if quantization != FP32 and how != "wrong foundation":
        pytest.skip("the same path at every quantization: tested at fp32")
    folder = tmp_path / "lowered"
    folder.mkdir()
    for path in shipped.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    damage(folder, how)
    monkeypatch.setattr(prebuilt, "LOWERED_DIR", folder)
    result = export_full(tiny_artifacts, tmp_path / "out", quantization)
    assert len(lowered(result)) == 1
    ours = tmp_path / "out"
    assert (ours / "full.pte").read_bytes() == (theirs / "full.pte").read_bytes()
    assert (ours / FOUNDATION_FILE).read_bytes() == (theirs / FOUNDATION_FILE).read_bytes()
    assert sorted(p.name for p in ours.iterdir() if p.name.startswith(".lora-export")) == []


def test_recipe_round_trips_through_json(shipped: Path) -> None:
    (recipe_path,) = shipped.glob("*.json")
    recipe = prebuilt.Recipe.from_json(json.loads(recipe_path.read_text()))
    assert prebuilt.Recipe.from_json(json.loads(recipe.to_json())) == recipe
    assert recipe.versions == prebuilt.pinned_versions()
