"""The docs' benchmark tables are the results files the benchmarks wrote, not hand-typed."""

from __future__ import annotations

from benchmarks.tables import BLOCK, DOCS, TABLES, rendered


def test_every_marked_table_is_made_from_its_results_file() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    names = [match.group(2) for match in BLOCK.finditer(docs)]
    assert sorted(names) == sorted(TABLES)  # each renderer has its place in the docs
    assert rendered(docs) == docs, "run: python -m benchmarks.tables"
