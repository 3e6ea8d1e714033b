"""The weight-cache shim's library is code we load (issue 42): kept in a folder only its user
can write to, named for everything it was built from, and built again once when it does not
load. A fake compiler stands in for g++ (its output a stand-in library with the shim's
functions), so no ExecuTorch is needed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lora_tui.engine import sharing
from lora_tui.engine.sharing import ShimRecipe, load_or_build

STAND_IN = """
extern "C" int lora_tui_set_weight_cache(int enabled) { return 0; }
extern "C" int lora_tui_get_weight_cache(void) { return 1; }
extern "C" int lora_tui_use_packed_file(const char* path) { return 0; }
"""

# Says its version from a file, and "compiles" by copying what OUTPUT names to -o, noting
# each compile in a log.
FAKE_COMPILER = """#!{python}
import shutil, sys
from pathlib import Path
here = Path({here!r})
if sys.argv[1:] == ["--version"]:
    print((here / "version").read_text())
    sys.exit(0)
with open(here / "compiles", "a") as log:
    log.write("compiled\\n")
shutil.copy((here / "output").read_text(), sys.argv[sys.argv.index("-o") + 1])
"""


class FakeCompiler:
    def __init__(self, folder: Path, stand_in: Path) -> None:
        self.folder = folder
        folder.mkdir()
        self.path = folder / "fake-g++"
        self.path.write_text(FAKE_COMPILER.format(python=sys.executable, here=str(folder)))
        self.path.chmod(0o755)
        self.says("fake-g++ 1.0")
        self.writes(stand_in)

    def says(self, version: str) -> None:
        (self.folder / "version").write_text(version)

    def writes(self, library: Path) -> None:
        (self.folder / "output").write_text(str(library))

    @property
    def compiles(self) -> int:
        log = self.folder / "compiles"
        return len(log.read_text().splitlines()) if log.is_file() else 0


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ to build the stand-in library")
    folder = tmp_path_factory.mktemp("stand_in")
    (folder / "stand_in.cpp").write_text(STAND_IN)
    library = folder / "stand_in.so"
    command = [compiler, "-shared", "-fPIC", str(folder / "stand_in.cpp"), "-o", str(library)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return library


@pytest.fixture
def compiler(tmp_path: Path, stand_in: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCompiler:
    fake = FakeCompiler(tmp_path / "compiler", stand_in)
    monkeypatch.setenv("CXX", str(fake.path))
    return fake


def recipe(tmp_path: Path) -> ShimRecipe:
    registry = tmp_path / "libexecutorch.so"  # only named on the compiler's command line
    versions = "executorch 1.5.1|torch 2.13.0"
    return ShimRecipe(b"// the shim", (tmp_path,), registry, versions, shim(tmp_path))


def shim(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "shim"


def libraries(tmp_path: Path) -> list[Path]:
    return sorted(shim(tmp_path).glob("*.so"))


def off(reason: object) -> str:
    """The reason sharing is off: one line, never a traceback."""
    assert isinstance(reason, str) and "\n" not in reason and reason.endswith("sharing is off")
    return reason


def test_the_folder_is_made_private_and_the_library_kept_for_the_next_start(
    tmp_path: Path, compiler: FakeCompiler
) -> None:
    loaded = load_or_build(recipe(tmp_path))
    assert loaded.lora_tui_get_weight_cache() == 1
    assert stat.S_IMODE(shim(tmp_path).stat().st_mode) == 0o700
    [library] = libraries(tmp_path)
    assert not library.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    load_or_build(recipe(tmp_path))
    assert compiler.compiles == 1


def test_a_folder_others_may_write_to_is_refused(tmp_path: Path, compiler: FakeCompiler) -> None:
    shim(tmp_path).mkdir(parents=True)
    shim(tmp_path).chmod(0o777)
    assert "is writable by others (777)" in off(load_or_build(recipe(tmp_path)))
    assert compiler.compiles == 0 and libraries(tmp_path) == []


def test_a_folder_of_another_user_is_refused(
    tmp_path: Path, compiler: FakeCompiler, monkeypatch: pytest.MonkeyPatch
) -> None:
    shim(tmp_path).mkdir(parents=True, mode=0o700)
    me = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: me + 1)  # the folder is now someone else's
    assert "belongs to another user" in off(load_or_build(recipe(tmp_path)))
    assert compiler.compiles == 0


def test_a_link_in_place_of_the_folder_is_refused(tmp_path: Path, compiler: FakeCompiler) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    shim(tmp_path).parent.mkdir()
    shim(tmp_path).symlink_to(elsewhere)
    assert "is not a folder" in off(load_or_build(recipe(tmp_path)))
    assert compiler.compiles == 0


def test_another_machine_or_compiler_builds_its_own(
    tmp_path: Path, compiler: FakeCompiler, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_or_build(recipe(tmp_path))
    compiler.says("fake-g++ 2.0")
    load_or_build(recipe(tmp_path))
    monkeypatch.setattr(sharing.platform, "machine", lambda: "aarch64")
    load_or_build(recipe(tmp_path))
    assert compiler.compiles == 3 and len(libraries(tmp_path)) == 3


def test_a_truncated_library_is_built_again(tmp_path: Path, compiler: FakeCompiler) -> None:
    built = sharing._build(recipe(tmp_path))  # built, not loaded in this process yet
    assert isinstance(built, Path)
    built.write_bytes(built.read_bytes()[:100])  # a full disk, a killed build
    assert load_or_build(recipe(tmp_path)).lora_tui_get_weight_cache() == 1
    assert compiler.compiles == 2


def test_a_library_others_may_change_is_built_again(tmp_path: Path, compiler: FakeCompiler) -> None:
    built = sharing._build(recipe(tmp_path))
    assert isinstance(built, Path)
    built.chmod(0o777)
    assert sharing._build(recipe(tmp_path)) == built
    assert compiler.compiles == 2
    assert not built.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def test_a_library_that_never_loads_turns_sharing_off_after_one_rebuild(
    tmp_path: Path, compiler: FakeCompiler
) -> None:
    damaged = tmp_path / "damaged.so"
    damaged.write_bytes(b"\x7fELF" + bytes(60))
    compiler.writes(damaged)
    assert "did not load, even built again" in off(load_or_build(recipe(tmp_path)))
    assert compiler.compiles == 2
