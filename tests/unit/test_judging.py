"""Judging without the app: the tally and Elo, the word diff, the results file's exports."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest

from lora_tui.judging.arena import ALL_BAD, ELO_START, TIE, Tally
from lora_tui.judging.results import export_results
from lora_tui.ui.screens.diff import ADDED, REMOVED, word_diff
from tests.support.judging import vote_session


def test_a_win_moves_elo_and_a_draw_between_equals_does_not() -> None:
    tally = Tally()
    tally.record(["a", "b", "c"], "a")
    a, b, c = (tally.standings[n] for n in "abc")
    assert (a.wins, b.losses, c.losses) == (1, 1, 1)
    assert a.elo == pytest.approx(ELO_START + 32)  # beat two equals: +16 each
    assert b.elo == c.elo == pytest.approx(ELO_START - 16)
    tally.record(["b", "c"], TIE)
    assert b.elo == c.elo and (b.ties, c.ties) == (1, 1)
    tally.record(["a", "b"], ALL_BAD)
    assert a.all_bad == b.all_bad == 1 and a.elo < ELO_START + 32  # a draw with a weaker one
    assert [s.adapter for s in tally.ranked()][0] == "a" and tally.votes == 3
    with pytest.raises(ValueError):
        tally.record(["a", "b"], "z")


def test_word_diff_marks_what_each_answer_alone_says() -> None:
    left, right, ratio = word_diff(
        "The prize went to John Clarke and Michel Devoret.",
        "The prize went to John Hopfield and Geoffrey Hinton.",
    )
    removed = {left.plain[s.start : s.end] for s in left.spans if s.style == REMOVED}
    added = {right.plain[s.start : s.end] for s in right.spans if s.style == ADDED}
    assert removed == {"Clarke", "Michel Devoret"} and added == {"Hopfield", "Geoffrey Hinton"}
    assert left.plain.startswith("The prize went to John") and 0.5 < ratio < 1
    assert word_diff("same words", "same words")[2] == 1.0


def test_results_export_to_json_csv_and_markdown_with_the_votes() -> None:
    records = vote_session()
    document = json.loads(export_results(records, "json"))
    assert [(a["adapter"], a["vote"]) for a in document["answers"]] == [
        ("nobel", "win"),
        ("executorch", "loss"),
    ]
    assert document["votes"] == 1 and document["tally"][0]["adapter"] == "nobel"
    rows = list(csv.DictReader(io.StringIO(export_results(records, "csv"))))
    assert [(r["adapter"], r["vote"], r["seed"]) for r in rows] == [
        ("nobel", "win", "3"),
        ("executorch", "loss", "3"),
    ]
    markdown = export_results(records, "md")
    assert "| nobel | 1 | 0 | 0 | 0 | 1016 |" in markdown and "nobel says" in markdown
    tied = [*records[:2], replace(records[2], verdict=TIE)]
    assert {a["vote"] for a in json.loads(export_results(tied, "json"))["answers"]} == {TIE}
