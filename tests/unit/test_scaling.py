"""An adapter at another LoRA strength (issue 44): ``scale_program`` multiplies the lora_B
tensors lora-export located and renames them as XNNPACK names them, and nothing else; the
command line's ``PROGRAM.pte@SCALE`` makes that copy in the tool's cache, never in the
export folder."""

from __future__ import annotations

import hashlib
import json
import stat
from array import array
from dataclasses import replace
from pathlib import Path

import pytest

from lora_tui.cli.main import main
from lora_tui.cli.options import foundation_groups, split_scale
from lora_tui.engine.artifacts import Foundation
from lora_tui.engine.scaled import ScaledOrigin, scaled_copy
from lora_tui.format import ArtifactError, Manifest, scale_label, scale_program, scaled_name
from lora_tui.ui.settings import parse_adapter_scale
from tests.unit.test_manifest_types import MANIFEST, PROGRAM, write_manifest

B1 = [0.5, -0.25, 1.5, -2.0]  # lora_B tensors (their fp32 data, as in a program)
B2 = [0.125, 3.0, -1.0, 0.75, 0.0, -0.5, 2.5, 1.0]
A1 = [0.1, 0.2, 0.3, 0.4]  # a lora_A tensor: never touched


def fp32(values: list[float]) -> bytes:
    return array("f", values).tobytes()


def name_of(data: bytes) -> bytes:
    """What XNNPACK names a constant by: its bytes' SHA-256, in hex."""
    return hashlib.sha256(data).hexdigest().encode()


def fake_program() -> tuple[bytes, list[list[int]]]:
    """A program's layout as far as scaling goes: names in a table (as the delegates and
    named data refer to them), then tensors' data at aligned offsets."""
    table = b"HEAD" + name_of(fp32(B1)) + b"|" + name_of(fp32(A1)) + b"|" + name_of(fp32(B2))
    table += b"|" + name_of(fp32(B1))  # a name may occur more than once
    program = bytearray(table + b"\0" * (-len(table) % 16))
    lora_b = []
    for values in (B1, A1, B2):
        if values is not A1:
            lora_b.append([len(program), len(values)])
        program += fp32(values) + b"\0" * (-len(values) * 4 % 16)
    return bytes(program + b"TAIL"), lora_b


def floats(program: bytes, offset: int, count: int) -> list[float]:
    return list(array("f", program[offset : offset + 4 * count]))


def test_scale_1_is_the_same_bytes() -> None:
    program, lora_b = fake_program()
    assert scale_program(program, lora_b, 1.0) == program
    assert scale_program(program, lora_b, 1) is program


def test_scale_2_doubles_lora_b_and_renames_it_and_nothing_else() -> None:
    program, lora_b = fake_program()
    doubled = scale_program(program, lora_b, 2.0)
    assert len(doubled) == len(program)
    (b1_at, b1_count), (b2_at, b2_count) = lora_b
    assert floats(doubled, b1_at, b1_count) == [2 * v for v in B1]
    assert floats(doubled, b2_at, b2_count) == [2 * v for v in B2]
    expected = program
    for values in (B1, B2):
        new = fp32([2 * v for v in values])
        expected = expected.replace(name_of(fp32(values)), name_of(new))
        expected = expected.replace(fp32(values), new)
    assert doubled == expected  # lora_A, its name, the header and the tail are as they were
    assert doubled.count(name_of(fp32([2 * v for v in B1]))) == 2
    assert name_of(fp32(A1)) in doubled and fp32(A1) in doubled


def test_scale_0_is_positive_zero_as_the_base_holds() -> None:
    program, lora_b = fake_program()
    zero = scale_program(program, lora_b, 0.0)
    for offset, count in lora_b:
        assert zero[offset : offset + 4 * count] == bytes(4 * count)  # +0.0, not -0.0


@pytest.mark.parametrize(
    ("scale", "error"),
    [(float("nan"), "not a finite number"), (4.5, "between -4 and 4"), (float("inf"), "finite")],
)
def test_a_bad_scale_is_refused(scale: float, error: str) -> None:
    program, lora_b = fake_program()
    with pytest.raises(ArtifactError, match=error):
        scale_program(program, lora_b, scale)


@pytest.mark.parametrize(
    "locations",
    [[], [[2, 4]], [[0, 10**9]], [[16, 4], [20, 4]], [[16]], [["16", 4]]],
)
def test_locations_outside_or_overlapping_are_refused(locations: list) -> None:
    program, _ = fake_program()
    with pytest.raises(ArtifactError):
        scale_program(program, locations, 2.0)


def test_names_and_labels() -> None:
    assert scale_label(0.5) == "×0.5" and scale_label(2.0) == "×2" and scale_label(-1) == "×-1"
    assert scaled_name("nobel", 0.5) == "nobel ×0.5"
    assert scaled_name("nobel", None) == "nobel" == scaled_name("nobel", 1.0)
    assert scale_label(0.1) != scale_label(0.1000001)  # exact: never two scales in one file


def test_the_manifest_reads_lora_b_and_scale_and_checks_them(tmp_path: Path) -> None:
    program = {**PROGRAM, "lora_b": [[64, 128], [1024, 256]], "scale": 0.5}
    manifest = Manifest.read(write_manifest(tmp_path, {**MANIFEST, "programs": {"n": program}}))
    assert manifest.programs["n"].lora_b == [[64, 128], [1024, 256]]
    assert manifest.programs["n"].scale == 0.5
    assert Manifest.read(write_manifest(tmp_path, MANIFEST)).programs["nobel"].lora_b is None
    for bad in ({"lora_b": [[64]]}, {"lora_b": [[-1, 2]]}, {"scale": "0.5"}, {"scale": True}):
        damaged = {**MANIFEST, "programs": {"n": {**PROGRAM, **bad}}}
        with pytest.raises(ArtifactError, match="damaged manifest"):
            Manifest.read(write_manifest(tmp_path, damaged))


# --- the scaled copy in the cache ----------------------------------------------------------


@pytest.fixture
def export_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lora-export folder with one adapter program (fake bytes, real locations), and the
    tool's cache elsewhere."""
    monkeypatch.setenv("LORA_TUI_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "export"
    folder.mkdir()
    program, lora_b = fake_program()
    (folder / "nobel.pte").write_bytes(program)
    (folder / "foundation.ptd").write_bytes(b"\0" * 48)
    sha = hashlib.sha256(program).hexdigest()
    entry = {**PROGRAM, "size_bytes": len(program), "sha256": sha, "lora_b": lora_b}
    write_manifest(folder, {**MANIFEST, "programs": {"nobel": entry}})
    return folder


def test_a_scaled_copy_is_made_in_the_cache_never_in_the_export_folder(
    export_folder: Path, tmp_path: Path
) -> None:
    before = sorted(export_folder.iterdir())
    copy = scaled_copy(export_folder / "nobel.pte", 0.5)
    assert sorted(export_folder.iterdir()) == before
    assert copy.is_relative_to(tmp_path / "cache" / "scaled") and copy.stem == "nobel ×0.5"
    assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(copy.parent.parent.stat().st_mode) == 0o700
    source = (export_folder / "nobel.pte").read_bytes()
    assert copy.read_bytes() == scale_program(source, fake_program()[1], 0.5)
    made = copy.stat().st_mtime_ns
    assert scaled_copy(export_folder / "nobel.pte", 0.5) == copy  # made once
    assert copy.stat().st_mtime_ns == made
    assert scaled_copy(export_folder / "nobel.pte", 1.0) == export_folder / "nobel.pte"
    # Scaling a copy again scales its source: ×0.5 at ×0.5 is ×0.25.
    assert scaled_copy(copy, 0.5).stem == "nobel ×0.25"


def test_a_damaged_copy_is_made_again(export_folder: Path) -> None:
    copy = scaled_copy(export_folder / "nobel.pte", 2.0)
    good = copy.read_bytes()
    copy.write_bytes(b"X" + good[1:])
    assert scaled_copy(export_folder / "nobel.pte", 2.0).read_bytes() == good


def test_the_host_knows_a_copy_by_its_source(export_folder: Path) -> None:
    """The copy's entry is its source's with the copy's file, hash and scale, so the
    pre-flight checks its bytes as it checks the source's."""
    copy = scaled_copy(export_folder / "nobel.pte", 0.5)
    manifest = Manifest.read(export_folder)
    foundation = Foundation(export_folder / "foundation.ptd", manifest, chat=None)  # type: ignore[arg-type]
    name, entry = foundation.entry_for(copy)
    source = manifest.programs["nobel"]
    assert name == "nobel ×0.5"
    origin = ScaledOrigin.beside(copy)
    assert origin is not None
    expected = replace(source, file=copy.name, scale=0.5, sha256=origin.sha256)
    assert entry == expected
    assert origin.sha256 == hashlib.sha256(copy.read_bytes()).hexdigest()
    # Over another foundation's folder it is a stranger's program: no entry.
    other = Foundation(copy.parent / "foundation.ptd", manifest, chat=None)  # type: ignore[arg-type]
    assert other.entry_for(copy) == ("nobel ×0.5", None)


def test_a_program_lora_export_did_not_describe_cannot_be_scaled(
    export_folder: Path, tmp_path: Path
) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "llm.pte").write_bytes(b"program")
    with pytest.raises(ArtifactError, match="scale needs a lora-export adapter program"):
        scaled_copy(loose / "llm.pte", 0.5)
    raw = json.loads((export_folder / "manifest.json").read_text())
    raw["programs"]["nobel"].pop("lora_b")
    (export_folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="export it again"):
        scaled_copy(export_folder / "nobel.pte", 0.5)


# --- the command line and the palette's question --------------------------------------------


def test_program_at_scale_on_the_command_line(export_folder: Path) -> None:
    assert split_scale(Path("nobel.pte@0.5")) == (Path("nobel.pte"), 0.5)
    assert split_scale(Path("dir@2/nobel.pte")) == (Path("dir@2/nobel.pte"), None)
    assert split_scale(Path("nobel.pte")) == (Path("nobel.pte"), None)
    weights = export_folder / "foundation.ptd"
    source = export_folder / "nobel.pte"
    (group,) = foundation_groups([[weights, Path(f"{source}@0.5")]], [source])
    assert [p.stem for p in group.programs] == ["nobel ×0.5", "nobel"]
    assert [group.name_of(p) for p in group.programs] == ["nobel ×0.5", "nobel"]


@pytest.mark.parametrize(
    ("suffix", "error"),
    [("@half", "'half' is not a scale"), ("@nan", "not a finite"), ("@9", "between -4 and 4")],
)
def test_a_bad_scale_is_one_line_and_exit_2(
    export_folder: Path, capsys: pytest.CaptureFixture[str], suffix: str, error: str
) -> None:
    weights, source = export_folder / "foundation.ptd", export_folder / "nobel.pte"
    with pytest.raises(SystemExit) as exit_:
        main(["--weights", str(weights), f"{source}{suffix}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert error in err and len(err.splitlines()) == 1


def test_the_palette_reads_an_adapter_and_a_scale() -> None:
    open_ = ["nobel", "nobel · 8da4w g32"]
    assert parse_adapter_scale("nobel 0.5", open_) == ("nobel", 0.5)
    assert parse_adapter_scale(" nobel · 8da4w g32 -1 ", open_) == ("nobel · 8da4w g32", -1.0)
    with pytest.raises(ValueError, match="no adapter named 'other'"):
        parse_adapter_scale("other 0.5", open_)
    with pytest.raises(ValueError, match="from -4 to 4"):
        parse_adapter_scale("nobel 7", open_)
    with pytest.raises(ValueError, match="not a number"):
        parse_adapter_scale("nobel x", open_)


def test_a_demo_cache_without_lora_b_locations_is_refilled(export_folder: Path) -> None:
    """A demo built before lora-export located lora_B is not complete: its next start
    refills the adapters (seconds), so the demo's adapters open at a scale."""
    from lora_tui.demo.build import STAMP_FILE, _is_complete

    stamp = {"version": "test"}
    (export_folder / STAMP_FILE).write_text(json.dumps(stamp))
    assert _is_complete(export_folder, stamp)
    raw = json.loads((export_folder / "manifest.json").read_text())
    raw["programs"]["nobel"].pop("lora_b")
    (export_folder / "manifest.json").write_text(json.dumps(raw))
    assert not _is_complete(export_folder, stamp)


def test_a_results_line_records_the_scale_and_old_lines_read_without() -> None:
    from lora_tui.engine.protocol import ReplyDone
    from lora_tui.engine.types import AdapterInfo, GenerationSettings, MemoryBreakdown, ReplyEnd
    from lora_tui.judging.records import AnswerRecord, from_json

    info = AdapterInfo(
        "nobel ×0.5", "nobel ×0.5.pte", "adapter", 16, ("q_proj",), 0.1, 0.2, 1.0, 2.0,
        None, None, None, None, MemoryBreakdown(None, None, 1.0), scale=0.5,
    )  # fmt: skip
    done = ReplyDone("nobel ×0.5", "Clarke", ReplyEnd.STOP, None)
    line = AnswerRecord.reply("Who?", "nobel ×0.5", done, GenerationSettings(), info).to_json()
    assert line["scale"] == 0.5
    assert from_json(json.loads(json.dumps(line))) == from_json(line)
    old = {k: v for k, v in line.items() if k != "scale"}
    record = from_json(old)
    assert isinstance(record, AnswerRecord) and record.scale is None
    with pytest.raises(ValueError, match="scale"):
        from_json({**line, "scale": "half"})
