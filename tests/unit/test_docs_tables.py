"""The docs' benchmark tables are the results files the benchmarks wrote, not hand-typed."""

from __future__ import annotations

from benchmarks.tables import BLOCK, TABLES, pages, rendered


def test_every_marked_table_is_made_from_its_results_file() -> None:
    names = []
    for page in pages():
        docs = page.read_text(encoding="utf-8")
        names += [match.group(2) for match in BLOCK.finditer(docs)]
        assert rendered(docs) == docs, f"{page.name}: run python -m benchmarks.tables"
    assert sorted(names) == sorted(TABLES)  # each renderer has its one place in the docs
