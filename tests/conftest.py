"""The three tiers, by folder, each a marker: ``unit`` (no model, no app: run it while you
work, ``pytest tests/unit``), ``app`` (the app headless on the fake engine: pilot and
snapshots) and ``integration`` (real programs over tiny fixtures lowered once per session,
in ``tests/integration/conftest.py``). CI runs all three."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TIERS = ("unit", "app", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.path).relative_to(Path(__file__).parent).parts[0]
        if tier in TIERS:
            item.add_marker(tier)


_OWN_CACHE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """What the tests pack, check and build goes to a cache folder of the run's own, not
    the user's (``~/.cache/lora-tui``): a test run must neither leave its fixtures' packed
    weights there nor find what the user's own runs left. Set before collection, so the
    environments test modules copy for their children when imported carry it too. A run
    that sets ``LORA_TUI_CACHE`` itself keeps its own."""
    if "LORA_TUI_CACHE" not in os.environ:
        folder = tempfile.mkdtemp(prefix="lora-tui-tests-cache-")
        os.environ["LORA_TUI_CACHE"] = folder
        config.stash[_OWN_CACHE] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_OWN_CACHE, None)
    if folder is not None:
        os.environ.pop("LORA_TUI_CACHE", None)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _entry_points_keep_their_safe_path_to_themselves() -> Iterator[None]:
    """``lora-tui``'s and ``lora-export``'s ``main()`` set PYTHONSAFEPATH for the rest of
    their process; called in-process by a test, it must not reach later tests' ``python -c``
    children, which import ``tests`` from the checkout they run in."""
    before = os.environ.get("PYTHONSAFEPATH")
    yield
    if before is None:
        os.environ.pop("PYTHONSAFEPATH", None)
    else:
        os.environ["PYTHONSAFEPATH"] = before
