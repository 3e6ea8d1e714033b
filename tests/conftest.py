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
