"""The docs' benchmark tables are the results files the benchmarks wrote, not hand-typed."""

from __future__ import annotations

from benchmarks import tables
from benchmarks.tables import BLOCK, TABLES, pages, rendered


def test_every_marked_table_is_made_from_its_results_file() -> None:
    names = []
    for page in pages():
        docs = page.read_text(encoding="utf-8")
        names += [match.group(2) for match in BLOCK.finditer(docs)]
        assert rendered(docs) == docs, f"{page.name}: run python -m benchmarks.tables"
    assert sorted(names) == sorted(TABLES)  # each renderer has its one place in the docs


def test_a_table_whose_results_file_is_missing_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "RESULTS_DIR", tmp_path)
    lines = TABLES["tool_memory"].render("tool_memory")
    assert lines == [
        "Not measured yet: `python -m benchmarks.tool_memory` writes "
        "`benchmarks/results/tool_memory.json`, then `python -m benchmarks.tables` makes "
        "this table."
    ]
