"""Files written whole take the umask's mode, and logs live in the user's state folder,
created 0700, never at a fixed name in /tmp (issue 42)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from lora_tui.common.files import state_log, write_atomic, write_text_atomic


@pytest.fixture
def umask():
    """Set the process's umask for one test."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_file_written_whole_takes_the_umasks_mode(tmp_path: Path, umask, mask, mode) -> None:
    umask(mask)
    path = tmp_path / "manifest.json"
    write_text_atomic(path, "{}")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    write_text_atomic(path, "{}\n")  # replacing one too
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_write_that_may_not_replace_leaves_the_file_there(tmp_path: Path) -> None:
    path = tmp_path / "results.md"
    path.write_text("mine")
    with pytest.raises(FileExistsError):
        write_atomic(path, lambda out: out.write(b"export"), replace=False)
    assert path.read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]  # no temporary file left
    write_atomic(tmp_path / "new.md", lambda out: out.write(b"export"), replace=False)
    assert (tmp_path / "new.md").read_text() == "export"


@pytest.fixture
def state(tmp_path: Path, monkeypatch) -> Path:
    """The user's state folder under ``tmp_path``, and a temporary folder of its own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return tmp_path / "state" / "lora-tui"


def test_a_log_is_made_in_the_users_state_folder_made_0700(state: Path) -> None:
    log = state_log("lora-export.log")
    assert log == state / "lora-export.log" and log.is_file()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    log.write_text("an earlier run\n")
    assert state_log("lora-export.log").read_text() == "an earlier run\n"
    assert state_log("lora-export.log", fresh=True).read_text() == ""


def test_a_log_is_not_made_through_a_symlink(state: Path, tmp_path: Path) -> None:
    state.mkdir(parents=True)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (state / "lora-export.log").symlink_to(victim)
    with pytest.raises(OSError):
        state_log("lora-export.log", fresh=True)
    assert victim.read_text() == "keep me"


def test_the_demos_build_log_is_in_the_state_folder(state: Path, monkeypatch) -> None:
    import lora_tui.cli.demo as demo_command
    from lora_tui.cli.options import DemoOptions, Runtime

    started: dict[str, Path] = {}

    def run_app(*_, build, **__) -> int:
        started["log"] = build.log_path
        return 0

    monkeypatch.setattr(demo_command, "run_app", run_app)
    monkeypatch.setattr(demo_command, "demos_current", lambda modes: False)  # a build runs
    options = DemoOptions(quantize=("none",), runtime=Runtime(), results=None)
    assert demo_command.demo_main(options) == 0
    assert started["log"] == state / "lora-tui-demo.log" and started["log"].is_file()
    assert list(Path(tempfile.gettempdir()).iterdir()) == []


def test_a_current_demo_opens_with_no_build_process(state: Path, monkeypatch) -> None:
    import lora_tui.cli.demo as demo_command
    from lora_tui.cli.options import DemoOptions, Runtime

    builds: list[object] = []
    monkeypatch.setattr(demo_command, "run_app", lambda *_, build, **__: builds.append(build))
    monkeypatch.setattr(demo_command, "demos_current", lambda modes: list(modes) == ["none"])
    options = DemoOptions(quantize=("none",), runtime=Runtime(), results=None)
    demo_command.demo_main(options)
    assert builds == [None]
