"""Text is text (issue 42), over real programs: files named as ML people name runs
(``support[lr=1e-4].pte``), with markup or an escape sequence in the name, a manifest that
names a program ``x[/]``, prompts that mention ``[/INST]``. Every command shows them as
written and prints no control character; a load that fails quotes the path as it is.

Before, each of these ended in ``rich.errors.MarkupError`` (a traceback; for ``eval``, after
the whole sweep had run) or showed ``support`` for ``support[lr=1e-4]``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import cli as export_cli
from tests.support.artifacts import MAX_CONTEXT, TinyArtifacts
from tests.support.checks import assert_no_controls, assert_one_line_error
from tests.support.pilot import pane, screen_text, send
from tests.support.prompts import write_prompts
from tests.support.real_app import real_app, wait_for

# name on disk -> the tiny program it is a copy of, and the name it shows as
PROGRAMS = {
    "support[lr=1e-4].pte": ("full", "support[lr=1e-4]"),
    "[bold]loud.pte": ("base", "[bold]loud"),
    "esc\x1b[2J\x1b]0;owned\x07name.pte": ("partial", "escname"),
}
LISTED = "x[/]"  # the manifest's name for partial.pte, which lora-tui eval and bench show
HEADLESS = [*PROGRAMS, "partial.pte"]  # bench and eval name a listed program as listed
HEADLESS_SHOWN = [*(shown for _, shown in PROGRAMS.values()), LISTED]
BROKEN = "broken[x] \x1b[31m.pte"  # cut short: its error quotes the path
BROKEN_SHOWN = "broken[x] .pte"
PROMPTS = [
    {"prompt": "<s>[INST] Say hi [/INST]", "keywords": ["[/INST]"], "group": "[/]"},
    {"prompt": "[bold]Loud[/bold] \x1b[5mnow", "regex": ".", "group": "g[lr=1]"},
]
PROMPTS_SHOWN = ["<s>[INST] Say hi [/INST]", "[bold]Loud[/bold] now"]
WIDE = {**os.environ, "COLUMNS": "400"}  # no table cell cut short or wrapped


def lora_tui(args: list[str], **options) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lora_tui.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **options)


@pytest.fixture(scope="module")
def strange(tiny_artifacts: TinyArtifacts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny folder with its programs copied to strange names, partial.pte listed in the
    manifest as "x[/]", and a program cut short."""
    folder = tmp_path_factory.mktemp("strange")
    shutil.copytree(tiny_artifacts.out, folder, dirs_exist_ok=True)
    for name, (program, _) in PROGRAMS.items():
        shutil.copy(folder / f"{program}.pte", folder / name)
    (folder / BROKEN).write_bytes((folder / "full.pte").read_bytes()[:4000])
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["programs"][LISTED] = manifest["programs"].pop("partial")
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_a_manifest_value_that_looks_like_markup_is_one_line(tmp_path: Path) -> None:
    """The reproduction: was a MarkupError traceback."""
    (tmp_path / "manifest.json").write_text('{"format": "[/]"}', encoding="utf-8")
    (tmp_path / "foundation.ptd").write_bytes(b"")
    done = lora_tui(["--weights", "foundation.ptd", "a.pte"], cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert_one_line_error(done, "lora-tui: error: manifest.json:", "(format [/],")


def test_bench_names_programs_as_written_and_quotes_a_bad_ones_path(strange: Path) -> None:
    programs = [str(strange / name) for name in [*HEADLESS, BROKEN]]
    args = ["bench", "--weights", str(strange / "foundation.ptd"), *programs]
    done = lora_tui([*args, "--max-new-tokens", "3"], env=WIDE)
    assert done.returncode == 1, done.stderr  # the program cut short
    assert "Traceback" not in done.stderr
    [error] = done.stderr.splitlines()
    assert error.startswith(f"lora-tui bench: error: {strange / BROKEN_SHOWN}"), error
    rows = [line.split("│")[1].strip() for line in done.stdout.splitlines() if "│" in line]
    assert rows[-4:] == HEADLESS_SHOWN, done.stdout
    assert_no_controls(done.stdout + done.stderr)


def test_eval_reports_prompts_and_names_as_written(strange: Path, tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "set[1].jsonl", PROMPTS)
    programs = [str(strange / name) for name in HEADLESS]
    args = ["eval", "--weights", str(strange / "foundation.ptd"), *programs]
    done = lora_tui([*args, "--prompts", str(prompts), "--max-new-tokens", "4"], env=WIDE)
    assert done.returncode == 0, done.stderr
    for text in [*PROMPTS_SHOWN, *HEADLESS_SHOWN, "g[lr=1]"]:
        assert text in done.stdout, text
    assert "│ [/]" in done.stdout  # the group
    assert_no_controls(done.stdout + done.stderr)

    broken = lora_tui([*args, str(strange / BROKEN), "--prompts", str(prompts)], env=WIDE)
    assert_one_line_error(broken, f"lora-tui eval: error: {strange / BROKEN_SHOWN}")
    assert_no_controls(broken.stderr)


def test_export_quotes_names_and_folders_as_written(
    tiny_artifacts: TinyArtifacts, tmp_path: Path, capfd, monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    base, adapter = tiny_artifacts.base_dir, tiny_artifacts.adapters["full"]
    out = tmp_path / "out[/]"  # a folder "out[" holding "]"
    shutil.copytree(tiny_artifacts.out, out)
    capfd.readouterr()
    code = export_cli.main(["--base", str(base), "--adapter", f"a[/]={adapter}", "--out", "x"])
    captured = capfd.readouterr()
    [line] = (captured.out + captured.err).splitlines()
    assert code == 1 and line.startswith("lora-export: error: a[/]="), line
    # "full" is up to date there: nothing is built, and the table names the folder.
    args = ["--base", str(base), "--adapter", f"full={adapter}", "--out", str(out)]
    code = export_cli.main([*args, "--max-context", str(MAX_CONTEXT)])
    shown = capfd.readouterr().err
    assert code == 0 and f"Artifacts in {out}" in shown, shown
    assert "Traceback" not in shown


async def test_the_app_opens_them_and_shows_names_errors_and_prompts_as_written(
    strange: Path, tmp_path: Path
) -> None:
    programs = [strange / name for name in [*PROGRAMS, BROKEN]]
    app = real_app(strange / "foundation.ptd", programs, tmp_path)
    async with app.run_test(size=(180, 50)) as pilot:
        settled = ("ready", "error")
        await wait_for(pilot, lambda: all(p.state in settled for p in app.main.panes.values()))
        await send(pilot, PROMPTS[0]["prompt"])
        await wait_for(pilot, lambda: all(p.state in settled for p in app.main.panes.values()))
        names = [shown for _, shown in PROGRAMS.values()]
        assert [p.state for p in app.main.panes.values()] == ["ready"] * 3 + ["error"]
        broken = pane(app, "broken[x] \x1b[31m")
        assert BROKEN_SHOWN in str(broken.query_one(".error-text").render())
        shown = screen_text(app)
        for index, name in enumerate([*names, "broken[x] "], start=1):
            assert f"[{index}] {name}" in shown, name
        assert shown.count(PROMPTS_SHOWN[0]) == 3
        assert_no_controls(shown)  # the random model's answers hold byte tokens too
