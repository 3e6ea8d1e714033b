"""A training run's checkpoints (issue 44): which ``checkpoint-N/`` folders a run holds, which
are complete, the programs they become, and the step the manifest carries for them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from lora_tui.format import ArtifactError, Manifest, checkpoint_program_name, display_name
from lora_tui.format.checkpoints import (
    AdapterSource,
    adapter_sources,
    checkpoints,
    incomplete,
    run_state,
)
from tests.unit.test_manifest_types import MANIFEST, PROGRAM, write_manifest


def safetensors_bytes(tensors: dict[str, int]) -> bytes:
    """A safetensors file of fp32 vectors (name -> length), laid out as the format is."""
    header, offset = {}, 0
    for name, length in tensors.items():
        header[name] = {
            "dtype": "F32",
            "shape": [length],
            "data_offsets": [offset, offset + 4 * length],
        }
        offset += 4 * length
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + b"\0" * offset


WEIGHTS = safetensors_bytes({"a": 16, "b": 8})


def write_adapter(folder: Path, *, config: bytes = b'{"r": 8}', weights: bytes = WEIGHTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_bytes(config)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


def test_checkpoints_come_by_step_not_by_name(tmp_path: Path) -> None:
    for step in (1000, 200, 50):
        write_adapter(tmp_path / f"checkpoint-{step}")
    (tmp_path / "checkpoint-0200").mkdir()  # not Trainer's name: no leading zeros
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "checkpoint-300").write_text("a file, not a folder")
    (tmp_path / "runs").mkdir()  # Trainer's TensorBoard logs sit beside them
    assert [c.step for c in checkpoints(tmp_path)] == [50, 200, 1000]
    assert checkpoints(tmp_path / "missing") == []


def test_a_run_is_one_program_per_complete_checkpoint(tmp_path: Path) -> None:
    write_adapter(tmp_path / "checkpoint-400")
    write_adapter(tmp_path / "checkpoint-200")
    sources, notes = adapter_sources("nobel", tmp_path)
    assert sources == [
        AdapterSource("nobel-step200", tmp_path / "checkpoint-200", 200),
        AdapterSource("nobel-step400", tmp_path / "checkpoint-400", 400),
    ]
    assert notes == []


def test_a_checkpoint_s_source_is_absolute_wherever_the_run_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_adapter(tmp_path / "runs" / "nobel" / "checkpoint-200")
    monkeypatch.chdir(tmp_path)
    (source,), _ = adapter_sources("nobel", Path("runs/nobel"))
    assert source.path == tmp_path / "runs" / "nobel" / "checkpoint-200"


def test_a_final_adapter_at_the_top_of_the_run_is_exported_too(tmp_path: Path) -> None:
    write_adapter(tmp_path)  # Trainer's save_model at the end of training
    write_adapter(tmp_path / "checkpoint-200")
    sources, _ = adapter_sources("nobel", tmp_path)
    assert [(s.name, s.step) for s in sources] == [("nobel", None), ("nobel-step200", 200)]


def test_an_adapter_folder_is_one_program_as_ever(tmp_path: Path) -> None:
    write_adapter(tmp_path)
    assert adapter_sources("nobel", tmp_path) == ([AdapterSource("nobel", tmp_path)], [])
    # A missing folder or a half adapter is the adapter reader's to explain, as before.
    missing = tmp_path / "missing"
    assert adapter_sources("x", missing) == ([AdapterSource("x", missing)], [])
    half = tmp_path / "half"
    half.mkdir()
    (half / "adapter_config.json").write_text("{}")
    assert adapter_sources("half", half) == ([AdapterSource("half", half)], [])


def test_incomplete_checkpoints_are_noted_and_skipped(tmp_path: Path) -> None:
    write_adapter(tmp_path / "checkpoint-100")
    (tmp_path / "checkpoint-200").mkdir()  # Trainer made the folder, wrote nothing yet
    write_adapter(tmp_path / "checkpoint-300", weights=WEIGHTS[:-10])  # still being written
    write_adapter(tmp_path / "checkpoint-400", config=b'{"r": 8')  # config half written
    (tmp_path / "checkpoint-500").mkdir()
    (tmp_path / "checkpoint-500" / "adapter_model.safetensors").write_bytes(WEIGHTS)
    sources, notes = adapter_sources("nobel", tmp_path)
    assert [s.name for s in sources] == ["nobel-step100"]
    assert notes == [
        "nobel: checkpoint-200 skipped (no adapter_model.safetensors yet)",
        "nobel: checkpoint-300 skipped (adapter_model.safetensors is 10 bytes short yet)",
        "nobel: checkpoint-400 skipped (adapter_config.json is not whole JSON yet)",
        "nobel: checkpoint-500 skipped (no adapter_config.json yet)",
    ]
    assert all("\n" not in note for note in notes)


@pytest.mark.parametrize(
    ("weights", "why"),
    [
        (b"", "adapter_model.safetensors is empty yet"),
        (b"\x10\0\0", "adapter_model.safetensors is short of its header yet"),
        (WEIGHTS[:20], "adapter_model.safetensors is short of its header yet"),
        (struct.pack("<Q", 2**62), "adapter_model.safetensors is short of its header yet"),
        (
            struct.pack("<Q", 4) + b"{{{{",
            "adapter_model.safetensors is not a whole safetensors file yet",
        ),
        (WEIGHTS, None),
        (WEIGHTS + b"\0" * 8, None),  # longer than needed: whole (safetensors pads, too)
    ],
)
def test_a_checkpoint_is_complete_when_its_weights_are_as_long_as_their_header_says(
    tmp_path: Path, weights: bytes, why: str | None
) -> None:
    assert incomplete(write_adapter(tmp_path, weights=weights)) == why


def test_a_pickled_checkpoint_is_skipped_with_why(tmp_path: Path) -> None:
    write_adapter(tmp_path / "checkpoint-1")
    pickled = tmp_path / "checkpoint-2"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text("{}")
    (pickled / "adapter_model.bin").write_bytes(b"\x80")
    whole = tmp_path / "checkpoint-3"  # a full fine-tune's Trainer checkpoint
    whole.mkdir()
    (whole / "model.safetensors").write_bytes(WEIGHTS)
    _, notes = adapter_sources("run", tmp_path)
    assert notes == [
        "run: checkpoint-2 skipped (only adapter_model.bin: pickled adapters are not read)",
        "run: checkpoint-3 skipped (a whole model's checkpoint, not a PEFT adapter's)",
    ]


def test_a_folder_with_neither_adapter_nor_checkpoints_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ArtifactError) as raised:
        adapter_sources("nobel", tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert "neither a PEFT adapter" in message and "checkpoint-N" in message


def test_a_run_with_no_complete_checkpoint_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "checkpoint-200").mkdir()
    with pytest.raises(ArtifactError, match="no complete checkpoint yet .*checkpoint-200"):
        adapter_sources("nobel", tmp_path)


def test_names_of_checkpoint_programs() -> None:
    assert checkpoint_program_name("nobel", 200) == "nobel-step200"
    assert display_name("nobel", 200) == "nobel step 200"
    assert display_name("nobel", None) == "nobel"


def test_the_manifest_carries_a_checkpoint_s_step(tmp_path: Path) -> None:
    programs = {
        "nobel": PROGRAM,
        "nobel-step200": {**PROGRAM, "file": "nobel-step200.pte", "step": 200},
        "odd-name": {**PROGRAM, "file": "odd.pte", "step": 5},
    }
    manifest = Manifest.read(write_manifest(tmp_path, {**MANIFEST, "programs": programs}))
    assert manifest.programs["nobel"].step is None
    assert manifest.programs["nobel"].checkpoint_of("nobel") is None
    assert manifest.programs["nobel-step200"].checkpoint_of("nobel-step200") == ("nobel", 200)
    assert manifest.programs["odd-name"].checkpoint_of("odd-name") == ("odd-name", 5)
    # Written back, a program with no step has no "step" key: as before checkpoints.
    written = json.loads(manifest.to_json())["programs"]
    assert "step" not in written["nobel"] and written["nobel-step200"]["step"] == 200
    assert Manifest.read(write_manifest(tmp_path, json.loads(manifest.to_json()))) == manifest


@pytest.mark.parametrize("step", ["200", -1, 2.0, True])
def test_a_step_of_the_wrong_type_is_one_line(tmp_path: Path, step: object) -> None:
    program = {**PROGRAM, "step": step}
    write_manifest(tmp_path, {**MANIFEST, "programs": {"nobel": program}})
    with pytest.raises(ArtifactError, match=r"programs\['nobel'\]\.step is"):
        Manifest.read(tmp_path)


def test_a_run_s_state_changes_as_training_writes_a_checkpoint(tmp_path: Path) -> None:
    write_adapter(tmp_path / "checkpoint-100")
    before = run_state(tmp_path)
    assert [Path(path).name for path, _, _ in before] == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    (tmp_path / "checkpoint-200").mkdir()
    assert run_state(tmp_path) == before  # an empty folder: nothing to export yet
    (tmp_path / "checkpoint-200" / "adapter_config.json").write_text("{}")
    assert run_state(tmp_path) != before
    growing = run_state(tmp_path)
    (tmp_path / "checkpoint-200" / "adapter_model.safetensors").write_bytes(WEIGHTS[:20])
    half = run_state(tmp_path)
    assert half != growing
    (tmp_path / "checkpoint-200" / "adapter_model.safetensors").write_bytes(WEIGHTS)
    assert run_state(tmp_path) != half
