"""The results file: only a results file is ever cut (a half-written last line), a line is
written whole or not at all, readers skip a damaged line with a warning, an export never
replaces a file, and an answer is known by its prompt, the SHA-256 of its program,
foundation and tokenizer, and its settings (issue 42)."""

from __future__ import annotations

import errno
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import pytest

import lora_tui.judging.results as results_module
from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.engine.types import GenerationSettings, ReplyEnd
from lora_tui.judging.evaluate import EvalResult, PromptCase
from lora_tui.judging.records import AnswerRecord, VoteRecord
from lora_tui.judging.results import (
    ResultsError,
    ResultsFile,
    ResultsWriter,
    check_results_target,
    input_files,
    read_results,
)
from lora_tui.judging.store import run_identity

PROMPTS = b'{"prompt": "Who won?", "keywords": ["Clarke"]}\n{"prompt": "Name a backend."}'


def answer(prompt: str, end: str = "stop") -> AnswerRecord:
    """An answer as lora-tui writes it (before the file adds program and time)."""
    return AnswerRecord(prompt=prompt, adapter="nobel", answer="x", end=ReplyEnd(end), settings={})


def line(prompt: str, end: str = "stop") -> bytes:
    return (json.dumps(answer(prompt, end).to_json()) + "\n").encode()


def prompts_of(path: Path) -> list[str]:
    return [r.prompt for r in read_results(path)]


def test_a_half_written_last_line_is_cut_off_and_the_next_starts_whole(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(line("a") + b'{"prompt": "b", "ans')
    results = ResultsFile(path)
    results.append(answer("c"), None)
    results.close()
    assert prompts_of(path) == ["a", "c"]


def test_a_last_line_lacking_only_its_newline_is_kept_and_ended(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(line("a") + line("b").rstrip(b"\n"))
    results = ResultsFile(path)
    results.append(answer("c"), None)
    results.close()
    assert prompts_of(path) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "content",
    [
        PROMPTS,  # a two-line prompt set without its final newline: its second line was cut
        PROMPTS + b"\n",  # the prompt set --prompts p.jsonl --out p.jsonl appended to
        b'{"prompt": "a", "ans',  # one half line: nothing says it is ours
        b"\x00\x01flatbuffer\nET12\x00\xff" * 50,  # a .pte
        b"# my notes\n\n" + line("a"),  # a file that does not start as ours
        line("a") + b'{"prompt": "Who won?"}\n',  # JSON of another kind after a result
    ],
    ids=["prompts", "prompts-ended", "half-line", "binary", "notes", "foreign-line"],
)
def test_a_file_that_is_not_a_results_file_is_refused_untouched(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    with pytest.raises(ResultsError, match="not a lora-tui results file") as refused:
        ResultsFile(path)
    assert "\n" not in str(refused.value)
    assert path.read_bytes() == content
    with pytest.raises(ResultsError):
        check_results_target(path, [])


def test_votes_and_answers_the_app_writes_make_a_results_file(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    writer = ResultsFile(path)
    writer.append(answer("Who?"), None)
    writer.append(
        VoteRecord(round="r1", prompt="Who?", adapters=("nobel", "base"), verdict="nobel")
    )
    writer.close()
    check_results_target(path, [])
    ResultsFile(path).close()
    assert len(read_results(path)) == 2


class ShortWrites:
    """``os.write`` that writes part of the first line it is given, then fails."""

    def __init__(self, fail: BaseException | None) -> None:
        self.fail, self.calls, self.write = fail, 0, os.write

    def __call__(self, fd: int, data: bytes) -> int:
        self.calls += 1
        if self.calls == 1:
            return self.write(fd, data[: len(data) // 2])
        if self.fail is not None:
            raise self.fail
        return self.write(fd, data)


@pytest.mark.parametrize(
    "fail",
    [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), KeyboardInterrupt()],
    ids=["disk-full", "signal"],
)
def test_a_short_write_that_fails_is_undone(tmp_path: Path, monkeypatch, fail) -> None:
    path = tmp_path / "results.jsonl"
    results = ResultsFile(path)
    results.append(answer("a"), None)
    before = path.read_bytes()
    writes = ShortWrites(fail)
    monkeypatch.setattr(results_module.os, "write", writes)
    with pytest.raises(type(fail)):
        results.append(answer("b"), None)
    monkeypatch.undo()
    assert writes.calls == 2  # half the line went out before the failure
    assert path.read_bytes() == before  # no half line for the next one to join
    results.append(answer("c"), None)
    results.close()
    assert prompts_of(path) == ["a", "c"]


def test_a_short_write_is_finished(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "results.jsonl"
    results = ResultsFile(path)
    writes = ShortWrites(None)
    monkeypatch.setattr(results_module.os, "write", writes)
    results.append(answer("a"), None)
    monkeypatch.undo()
    assert writes.calls == 2
    results.append(answer("b"), None)
    results.close()
    assert prompts_of(path) == ["a", "b"]


def test_reading_skips_a_damaged_line_with_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    glued = b'{"prompt": "b", "ans' + line("c")  # what a short write left before
    path.write_bytes(line("a") + glued + line("d") + b"[1, 2]\n")
    warnings: list[str] = []
    assert [r.prompt for r in read_results(path, warnings.append)] == ["a", "d"]
    assert warnings == [f"{path}: skipped 2 line(s) that are not results lines (2, 4)"]
    path.write_bytes(line("a") + glued)
    ResultsFile(path).close()  # damage in a results file does not stop it taking more
    assert path.read_bytes() == line("a") + glued


def test_an_answer_is_known_by_prompt_program_foundation_tokenizer_and_settings() -> None:
    settings = asdict(GenerationSettings(temperature=0.0, max_new_tokens=16))
    line = replace(answer("Who?"), program_sha256="ab" * 32, settings=settings, time="t1")
    line = replace(line, foundation_sha256="f" * 64, tokenizer_sha256="7" * 64)
    again = replace(line, time="t2", answer="other", settings=dict(reversed(settings.items())))
    assert line.key() == again.key()
    longer = replace(line, settings={**settings, "max_new_tokens": 32})
    assert line.key() != longer.key()
    for field in ("program_sha256", "foundation_sha256", "tokenizer_sha256"):
        assert line.key() != replace(line, **{field: "cd" * 32}).key(), field
        assert line.key() != replace(line, **{field: None}).key(), field


def test_a_saved_answer_is_scored_again_by_this_runs_prompt() -> None:
    case = PromptCase("Who?", "nobel", ("Clarke",))
    record = replace(answer("Who?"), answer="John Clarke", right=False)
    result = EvalResult.from_record(case, "nobel", record, GenerationSettings())
    assert result.resumed and result.right is True and result.done.end is ReplyEnd.STOP
    failed = replace(record, end=ReplyEnd.ERROR)
    assert EvalResult.from_record(case, "nobel", failed, GenerationSettings()).right is False
    assert json.loads(json.dumps(result.record().to_json()))["answer"] == "John Clarke"


# --- never an input ------------------------------------------------------------------------


def inputs(tmp_path: Path) -> tuple[list[FoundationPrograms], dict[str, Path]]:
    files = {
        "ptd": tmp_path / "foundation.ptd",
        "pte": tmp_path / "nobel.pte",
        "tokenizer": tmp_path / "tokenizer.json",
        "config": tmp_path / "tokenizer_config.json",
        "manifest": tmp_path / "manifest.json",
    }
    for path in files.values():
        path.write_bytes(b"input bytes")
    return [FoundationPrograms(files["ptd"], (files["pte"],))], files


def test_an_input_is_refused_as_the_results_file_by_inode_not_name(tmp_path: Path) -> None:
    groups, files = inputs(tmp_path)
    every = input_files(groups, None)
    for path in files.values():
        with pytest.raises(ResultsError, match="an input of this run"):
            check_results_target(path, every)
    (tmp_path / "elsewhere").mkdir()
    aliases = [
        tmp_path / "elsewhere" / ".." / "nobel.pte",
        tmp_path / "hard-link.jsonl",
        tmp_path / "symlink.jsonl",
    ]
    os.link(files["pte"], aliases[1])
    aliases[2].symlink_to(files["ptd"])
    for alias in aliases:
        with pytest.raises(ResultsError, match="an input of this run"):
            check_results_target(alias, every)
    assert all(path.read_bytes() == b"input bytes" for path in files.values())
    check_results_target(tmp_path / "results.jsonl", every)  # a new file is fine


def test_a_tokenizer_folder_given_apart_is_an_input_too(tmp_path: Path) -> None:
    groups, _ = inputs(tmp_path)
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}")
    every = input_files(groups, folder)
    for name in ("tokenizer.json", "chat_template.jinja"):
        with pytest.raises(ResultsError):
            check_results_target(folder / name, every)


def test_the_run_identity_is_the_foundation_and_what_the_tokenizer_reads(tmp_path: Path) -> None:
    _, files = inputs(tmp_path)
    files["manifest"].unlink()  # no manifest: the configs beside the tokenizer count
    first = run_identity(files["ptd"], None)
    assert run_identity(files["ptd"], None) == first
    files["config"].write_text('{"chat_template": "other"}')
    assert run_identity(files["ptd"], None)["tokenizer_sha256"] != first["tokenizer_sha256"]
    changed = run_identity(files["ptd"], None)
    files["ptd"].write_bytes(b"other weights")
    assert run_identity(files["ptd"], None)["foundation_sha256"] != changed["foundation_sha256"]
    assert run_identity(files["ptd"], None)["tokenizer_sha256"] == changed["tokenizer_sha256"]


# --- exports ---------------------------------------------------------------------------------


def export(path: Path, fmt: str) -> list[tuple[str, bool]]:
    reports: list[tuple[str, bool]] = []
    writer = ResultsWriter(path, lambda text, ok: reports.append((text, ok)))
    writer.append(answer("Who?"), None)
    writer.export(fmt)
    writer.close()
    return reports


def test_an_export_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    mine = tmp_path / "results.md"
    mine.write_text("my own notes\n")
    assert export(path, "md") == [(f"saved {tmp_path / 'results.1.md'}", True)]
    assert mine.read_text() == "my own notes\n"
    assert (tmp_path / "results.1.md").read_text().startswith("# lora-tui results")
    assert export(path, "md") == [(f"saved {tmp_path / 'results.2.md'}", True)]
    assert (tmp_path / "results.1.md").read_text().count("### nobel: Who?") == 1  # as it was


def test_an_export_warns_of_the_lines_it_skipped(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(line("a") + b'{"prompt": "b", "ans' + line("c"))
    reports = export(path, "json")
    assert reports[0] == (f"{path}: skipped 1 line(s) that are not results lines (2)", False)
    assert reports[1] == (f"saved {tmp_path / 'results.json'}", True)
    exported = json.loads((tmp_path / "results.json").read_text())
    assert [a["prompt"] for a in exported["answers"]] == ["a", "Who?"]


def test_the_app_refuses_an_input_or_a_prompt_set_as_its_results_file(
    tmp_path: Path, capsys
) -> None:
    from lora_tui.cli.compare import run_app

    groups, files = inputs(tmp_path)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes(PROMPTS)
    for results, needle in ((files["pte"], "an input of this run"), (prompts, "not a lora-tui")):
        assert run_app(groups, results=results) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], lines
    assert files["pte"].read_bytes() == b"input bytes" and prompts.read_bytes() == PROMPTS
