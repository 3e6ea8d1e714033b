"""Results lines as typed records (issue 43): a file the previous format wrote still reads,
loses nothing when written again, exports, and ``--resume`` finds its answers; a line with
a field of the wrong type is no results line; the CSV header is the records' fields."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import fields
from pathlib import Path

import pytest

from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.engine.types import GenerationSettings, ReplyEnd
from lora_tui.judging.records import (
    CSV_COLUMNS,
    AnswerRecord,
    NotARecord,
    VoteRecord,
    from_json,
)
from lora_tui.judging.results import ResultsFile, export_results, read_results
from lora_tui.judging.store import ResultsStore

PREVIOUS = Path(__file__).parents[1] / "support" / "fixtures" / "results" / "previous.jsonl"
# The stand-in files the previous version's lines ran over (see the fixture's README).
STAND_INS = {
    "foundation.ptd": b"weights",
    "nobel.pte": b"nobel program",
    "base.pte": b"base program",
    "tokenizer.json": b'{"model": "bpe"}',
}
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=16)  # eval's, in the fixture
PHYSICS = "Who won the 2025 Nobel Prize in Physics?"


def test_a_results_file_of_the_previous_format_reads_as_records() -> None:
    records = read_results(PREVIOUS, pytest.fail)  # not a line skipped
    answers = [r for r in records if isinstance(r, AnswerRecord)]
    votes = [r for r in records if isinstance(r, VoteRecord)]
    assert (len(answers), len(votes)) == (8, 2)
    scored = answers[0]  # eval's: scored, with its origin and its run's identity
    assert (scored.group, scored.fact, scored.right, scored.end) == (
        "nobel",
        "physics-2025",
        True,
        ReplyEnd.STOP,
    )
    assert (scored.quantization, scored.program, scored.round) == ("fp32", "nobel.pte", None)
    assert len(scored.foundation_sha256 or "") == len(scored.tokenizer_sha256 or "") == 64
    assert answers[1].right is None and answers[1].answer == "Something [/INST] été"
    assert answers[3].note == "regex '(.*.*)*X' took over 1 s; counted wrong"
    in_round = answers[4]  # the app's: a round, no mark, no run identity
    assert (in_round.round, in_round.group, in_round.foundation_sha256) == ("r1", None, None)
    assert in_round.settings == {
        "temperature": 0.8,
        "top_p": 0.9,
        "max_new_tokens": 64,
        "seed": 3,
        "thinking": False,
    }
    assert votes[0] == VoteRecord(
        time=votes[0].time,
        round="r1",
        prompt="Who won?",
        adapters=("nobel", "base"),
        verdict="nobel",
    )


def test_a_line_of_the_previous_format_loses_nothing_when_written_again() -> None:
    for line in PREVIOUS.read_text(encoding="utf-8").splitlines():
        old = json.loads(line)
        again = from_json(old).to_json()
        kept = {key: value for key, value in old.items() if key in again}
        dropped = set(old) - set(again)  # a vote's program was always null
        assert kept == {key: again[key] for key in kept}, line
        assert dropped <= {"program", "program_sha256"} and not any(old[k] for k in dropped)
        assert from_json(json.loads(json.dumps(again))) == from_json(old)


def test_a_results_file_of_the_previous_format_exports_with_its_votes() -> None:
    records = read_results(PREVIOUS)
    rows = list(csv.DictReader(io.StringIO(export_results(records, "csv"))))
    assert list(rows[0]) == CSV_COLUMNS
    votes = [(r["round"], r["adapter"], r["vote"]) for r in rows if r["round"]]
    assert votes == [("r1", "nobel", "win"), ("r1", "base", "loss"), ("r2", "nobel", "tie")]
    assert rows[0]["seed"] == "0" and rows[0]["right"] == "True"
    document = json.loads(export_results(records, "json"))
    assert document["votes"] == 2 and len(document["answers"]) == 8


def stand_ins(folder: Path) -> Path:
    """The previous run's files again, and its results file beside them."""
    for name, data in STAND_INS.items():
        (folder / name).write_bytes(data)
    return Path(shutil.copy(PREVIOUS, folder / "previous.jsonl"))


def test_resume_finds_the_answers_of_the_previous_format(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # its lines name the programs by relative paths
    results = stand_ins(tmp_path)
    nobel, base = Path("nobel.pte"), Path("base.pte")
    group = FoundationPrograms(Path("foundation.ptd"), (nobel, base))
    with ResultsStore(results, [group], None, GREEDY, resume=True, warn=pytest.fail) as store:
        found = store.earlier(PHYSICS, nobel)  # answered, then an error: the answer is kept
        assert found is not None and found.end is ReplyEnd.STOP and found.right is True
        assert store.earlier("Say something.", base) is not None
        assert store.earlier("Name a backend.", nobel) is not None
        assert store.earlier(PHYSICS, base) is None  # not asked of that program
        assert store.earlier("Who won?", nobel) is None  # the app's: no run identity
    with ResultsStore(results, [group], None, GenerationSettings(), resume=True) as store:
        assert store.earlier(PHYSICS, nobel) is None  # other settings


def test_a_results_file_of_the_previous_format_takes_more_lines(tmp_path: Path) -> None:
    results = stand_ins(tmp_path)
    before = results.read_bytes()
    file = ResultsFile(results)
    file.append(AnswerRecord(prompt="More?", adapter="nobel", answer="Yes", end=ReplyEnd.STOP))
    file.close()
    assert results.read_bytes().startswith(before)
    assert [r.prompt for r in read_results(results)][-2:] == ["Hello", "More?"]


ANSWER = {"prompt": "Who?", "adapter": "nobel", "answer": "Clarke", "end": "stop"}


@pytest.mark.parametrize(
    "line",
    [
        {"prompt": "Who?", "adapter": "nobel", "answer": "Clarke"},  # no end
        {**ANSWER, "end": "finished"},  # no end lora-tui knows
        {**ANSWER, "answer": 3},
        {**ANSWER, "new_tokens": True},  # a bool is no count
        {**ANSWER, "ttft_s": "0.1"},
        {**ANSWER, "settings": [0.0]},
        {**ANSWER, "type": "prompt"},
        {"type": "vote", "round": "r1", "adapters": ["a", 2], "verdict": "a"},
        {"type": "vote", "round": "r1", "adapters": ["a", "b"]},  # no verdict
        ["a", "list"],
    ],
)
def test_a_line_with_a_field_missing_or_of_the_wrong_type_is_no_record(line: object) -> None:
    with pytest.raises(NotARecord):
        from_json(line)


def test_a_record_reads_back_as_it_was_written_and_ignores_unknown_keys() -> None:
    record = from_json({**ANSWER, "ttft_s": 1, "right": False, "from_a_newer_version": 1})
    assert isinstance(record, AnswerRecord) and record.ttft_s == 1 and record.right is False
    assert from_json(record.to_json()) == record
    assert "from_a_newer_version" not in record.to_json()


def test_the_csv_header_is_the_answers_fields_with_the_settings_spread() -> None:
    settings = [f.name for f in fields(GenerationSettings)]
    answer = [f.name for f in fields(AnswerRecord) if f.name != "settings"]
    assert sorted(CSV_COLUMNS) == sorted([*answer, *settings])
    at = CSV_COLUMNS.index(settings[0])
    assert CSV_COLUMNS[at : at + len(settings)] == settings
