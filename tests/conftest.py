"""The three tiers, by folder, each a marker: ``unit`` (no model, no app: run it while you
work, ``pytest tests/unit``), ``app`` (the app headless on the fake engine: pilot and
snapshots) and ``integration`` (real programs over tiny fixtures lowered once per session,
in ``tests/integration/conftest.py``). CI runs all three."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

TIERS = ("unit", "app", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.path).relative_to(Path(__file__).parent).parts[0]
        if tier in TIERS:
            item.add_marker(tier)


@pytest.fixture(autouse=True, scope="session")
def _a_cache_of_the_sessions_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What the tests pack, check and build goes to a cache folder of the session's, not
    the user's (``~/.cache/lora-tui``): a test run must neither leave its fixtures' packed
    weights there nor find what the user's own runs left. Children inherit it. A run that
    sets ``LORA_TUI_CACHE`` itself keeps its own."""
    if "LORA_TUI_CACHE" in os.environ:
        yield
        return
    os.environ["LORA_TUI_CACHE"] = str(tmp_path_factory.mktemp("lora-tui-cache"))
    try:
        yield
    finally:
        os.environ.pop("LORA_TUI_CACHE", None)


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
