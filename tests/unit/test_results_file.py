"""The results file as ``eval --resume`` reads it: a half-written last line is cut off,
and an answer is known by its prompt, its program's SHA-256 and its settings."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from lora_tui.engine.types import GenerationSettings, ReplyEnd
from lora_tui.evaluate import EvalResult, PromptCase
from lora_tui.results import ResultsFile, answer_key, read_results


def test_a_half_written_last_line_is_cut_off_and_the_next_starts_whole(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"prompt": "a", "answer": "x"}\n{"prompt": "b", "ans')
    results = ResultsFile(path)
    results.append({"prompt": "c", "answer": "y"}, None)
    results.close()
    assert [r["prompt"] for r in read_results(path)] == ["a", "c"]


def test_a_file_of_one_half_line_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"prompt": "a", "ans')
    ResultsFile(path).close()
    assert path.read_bytes() == b""


def test_an_answer_is_known_by_prompt_program_and_settings() -> None:
    settings = asdict(GenerationSettings(temperature=0.0, max_new_tokens=16))
    line = {"prompt": "Who?", "program_sha256": "ab" * 32, "settings": settings, "time": "t1"}
    again = {**line, "time": "t2", "answer": "other", "settings": dict(reversed(settings.items()))}
    assert answer_key(line) == answer_key(again)
    longer = {**line, "settings": {**settings, "max_new_tokens": 32}}
    assert answer_key(line) != answer_key(longer)
    assert answer_key(line) != answer_key({**line, "program_sha256": "cd" * 32})


def test_a_saved_answer_is_scored_again_by_this_runs_prompt() -> None:
    case = PromptCase("Who?", "nobel", ("Clarke",))
    record = {"answer": "John Clarke", "end": "stop", "right": False}
    result = EvalResult.from_record(case, "nobel", record, GenerationSettings())
    assert result.resumed and result.right is True and result.done.end is ReplyEnd.STOP
    failed = EvalResult.from_record(case, "nobel", {**record, "end": "error"}, GenerationSettings())
    assert failed.right is False
    assert json.loads(json.dumps(result.record()))["answer"] == "John Clarke"
