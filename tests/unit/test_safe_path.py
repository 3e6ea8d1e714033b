"""The path a child is given leaves the working folder out, unless our own code is there
(``tests/integration/test_safe_path.py`` runs the real children from a planted folder)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from lora_tui.common.safe_path import safe_path_for_children, trusted_path

OWN_ROOT = str(Path(__file__).resolve().parents[2])  # where lora_tui is imported from


def test_the_working_folder_is_left_out_in_every_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = tmp_path / "pack"
    (pack / "sub").mkdir(parents=True)
    monkeypatch.chdir(pack)
    entries = ["", ".", "sub", str(pack), str(pack / "sub" / ".."), str(tmp_path), sys.prefix]
    assert trusted_path(entries) == [str(tmp_path), sys.prefix]


def test_a_checkout_run_in_place_keeps_its_own_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(OWN_ROOT)
    assert trusted_path(["", OWN_ROOT, sys.prefix]) == ["", OWN_ROOT, sys.prefix]


def test_a_child_starts_safe_and_the_caller_gets_its_own_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONSAFEPATH", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = list(sys.path)
    with safe_path_for_children():
        assert os.environ["PYTHONSAFEPATH"] == "1"
        assert str(tmp_path) not in sys.path
    assert "PYTHONSAFEPATH" not in os.environ
    assert sys.path == before
