"""The packed-weights file's rules without a model: published whole, trusted only while its
sidecar matches it, packed again otherwise, one key per foundation and runtime."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from lora_tui.engine import packed


@pytest.fixture(autouse=True)
def fresh_process_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test as a new process of the tool: its own cache, no file in use or held."""
    monkeypatch.setenv("LORA_TUI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(packed, "_in_use", None)
    monkeypatch.setattr(packed, "_held", {})
    yield
    for fd in packed._held.values():
        os.close(fd)


def packed_bytes(entries: int = 3, payload: bytes = b"w" * 4096) -> bytes:
    """What the backend writes: packed data, an index, and the 20-byte trailer."""
    index = b"i" * 32
    trailer = struct.pack("<QIII", len(payload), entries, 0x58505743, 2)
    return payload + index + trailer


def foundation(tmp_path: Path) -> Path:
    path = tmp_path / "foundation.ptd"
    path.write_bytes(b"f" * 100)
    return path


def fake_packer(calls: list[Path], content: bytes | None = None):
    """Stands in for the child: writes what the backend would, and publishes it."""

    def pack(source: Path, program: Path, data: Path) -> str | None:
        calls.append(data)
        written = data.with_name(f".{data.stem}.partial")
        written.write_bytes(packed_bytes() if content is None else content)
        return packed._publish(written, data, source)

    return pack


def test_a_published_file_is_sound_until_anything_writes_to_it(tmp_path: Path) -> None:
    packed.folder().mkdir(parents=True)
    data = packed.folder() / "k.bin"
    written = tmp_path / "partial"
    written.write_bytes(packed_bytes())
    assert packed._publish(written, data, foundation(tmp_path)) is None
    assert not written.exists() and packed._sound(data)
    recorded = json.loads(data.with_suffix(".json").read_text())
    assert recorded["size"] == data.stat().st_size and len(recorded["sha256"]) == 64

    with data.open("r+b") as file:  # one byte changed in place: same size
        file.write(b"x")
    assert not packed._sound(data)


def test_a_file_without_its_sidecar_or_with_another_key_is_not_trusted(tmp_path: Path) -> None:
    packed.folder().mkdir(parents=True)
    data = packed.folder() / "k.bin"
    written = tmp_path / "partial"
    written.write_bytes(packed_bytes())
    packed._publish(written, data, foundation(tmp_path))
    sidecar = data.with_suffix(".json")
    other = packed.folder() / "other.bin"
    data.rename(other)
    sidecar.rename(other.with_suffix(".json"))
    assert not packed._sound(other)  # its sidecar names another key
    other.with_suffix(".json").unlink()
    assert not packed._sound(other)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"cut", "cut short"),
        (packed_bytes()[:-8] + struct.pack("<II", 0x12345678, 2), "no index"),  # no magic
        (packed_bytes(entries=0), "no index"),
    ],
)
def test_a_child_file_without_a_whole_index_is_not_published(
    tmp_path: Path, content: bytes, says: str
) -> None:
    packed.folder().mkdir(parents=True)
    data = packed.folder() / "k.bin"
    written = tmp_path / "partial"
    written.write_bytes(content)
    assert says in (packed._publish(written, data, foundation(tmp_path)) or "")
    assert not written.exists() and not data.exists() and not data.with_suffix(".json").exists()


def test_the_key_follows_the_foundation_and_its_hash(tmp_path: Path) -> None:
    source = foundation(tmp_path)
    first = packed.key_for(source)
    assert packed.key_for(source) == first
    os.utime(source, ns=(1, 1))  # rewritten in place: a new modification time
    assert packed.key_for(source) != first
    assert packed.key_for(source, "a" * 64) != packed.key_for(source, "b" * 64)


def test_packed_once_then_mapped_and_a_changed_file_packed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    used: list[Path] = []
    monkeypatch.setattr(packed, "_pack", fake_packer(calls))
    monkeypatch.setattr("lora_tui.engine.sharing.use_packed_file", lambda p: used.append(p))
    source = foundation(tmp_path)

    first = packed.prepare_packed(source, tmp_path / "a.pte")
    assert first.path is not None and first.detail.startswith("packed now") and len(calls) == 1
    assert used == [first.path] and packed.in_use() == first.path

    monkeypatch.setattr(packed, "_in_use", None)  # the next start
    for fd in packed._held.values():
        os.close(fd)
    monkeypatch.setattr(packed, "_held", {})
    again = packed.prepare_packed(source, tmp_path / "a.pte")
    assert again == packed.Packed(first.path, "mapped from disk") and len(calls) == 1

    monkeypatch.setattr(packed, "_in_use", None)
    for fd in packed._held.values():
        os.close(fd)
    monkeypatch.setattr(packed, "_held", {})
    with first.path.open("ab") as file:  # damaged (or written by something else)
        file.write(b"tail")
    third = packed.prepare_packed(source, tmp_path / "a.pte")
    assert third.detail.startswith("packed now") and len(calls) == 2
    assert packed._sound(first.path)


def test_a_failed_pack_leaves_programs_packing_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packed, "_pack", lambda *_: "packing the foundation failed (boom)")
    result = packed.prepare_packed(foundation(tmp_path), tmp_path / "a.pte")
    assert result.path is None and "boom" in result.detail and packed.in_use() is None
    assert not list(packed.folder().glob("*.bin"))


def test_one_file_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed, "_pack", fake_packer([]))
    monkeypatch.setattr("lora_tui.engine.sharing.use_packed_file", lambda p: None)
    first = packed.prepare_packed(foundation(tmp_path), tmp_path / "a.pte")
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    second = packed.prepare_packed(foundation(other_folder), other_folder / "b.pte")
    assert first.path is not None and second.path is None
    assert "another foundation" in second.detail


def test_files_of_an_earlier_or_deleted_foundation_are_deleted_unless_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packed, "_pack", fake_packer([]))
    monkeypatch.setattr("lora_tui.engine.sharing.use_packed_file", lambda p: None)
    source = foundation(tmp_path)
    old = packed.prepare_packed(source, tmp_path / "a.pte").path
    assert old is not None
    for fd in packed._held.values():  # that process ended
        os.close(fd)
    monkeypatch.setattr(packed, "_held", {})
    monkeypatch.setattr(packed, "_in_use", None)
    old.with_suffix(".log").write_text("what the runtime printed")
    stray = old.with_name("failed.lock")  # a packing that failed: a lock and a log, no file
    stray.touch()
    stray.with_suffix(".log").write_text("it failed")
    os.utime(source, ns=(1, 1))  # exported again in place
    new = packed.prepare_packed(source, tmp_path / "a.pte").path
    assert new is not None and new != old
    for leftover in (old, stray):
        assert not any(leftover.with_suffix(s).exists() for s in (".bin", ".json", ".lock", ".log"))
    assert new.with_suffix(".lock").exists()  # its own, held while it was published

    # A file still mapped by a running process stays.
    monkeypatch.setattr(packed, "_in_use", None)
    gone = tmp_path / "gone"
    gone.mkdir()
    held = packed.prepare_packed(foundation(gone), gone / "b.pte").path
    assert held is not None
    (gone / "foundation.ptd").unlink()
    monkeypatch.setattr(packed, "_in_use", None)
    os.utime(source, ns=(2, 2))
    packed.prepare_packed(source, tmp_path / "a.pte")
    assert held.exists() and held.with_suffix(".lock").exists()  # this process holds it


def test_a_folder_others_may_write_is_refused(tmp_path: Path) -> None:
    packed.folder().mkdir(parents=True)
    packed.folder().chmod(0o777)
    result = packed.prepare_packed(foundation(tmp_path), tmp_path / "a.pte")
    assert result.path is None and "writable by others" in result.detail
