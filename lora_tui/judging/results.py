"""The results file: one JSON line per answer, which ``lora-tui eval`` and the app both
append, and one per blind vote. Each line is written whole or not at all (a short write is
finished, a failed one undone) and synced, so a run or a session that dies loses at most
the answer it was writing. A vote line names its round; the answers of that round carry
the same ``round``. What a line holds is a typed record (``records.py``).

Only a results file is ever cut: a file is one when its first line is a results line and
no line is JSON of another kind (a prompt set, a .pte, notes are refused as they are, and
so is any input of the run). Readers skip a damaged line with a warning.

It exports to Markdown, JSON and CSV, each answer with its vote and the tally, under a
name no file has yet."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from rich.console import Console

from lora_tui.common.console import print_warning
from lora_tui.common.files import write_atomic
from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.format import (
    CHAT_TEMPLATE_FILE,
    GENERATION_CONFIG_FILE,
    MANIFEST_FILE,
    MODEL_CONFIG_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    ArtifactError,
    sha256_file,
)
from lora_tui.judging.arena import ALL_BAD, TIE, Tally
from lora_tui.judging.records import (
    CSV_COLUMNS,
    AnswerRecord,
    NotARecord,
    Record,
    VoteRecord,
    from_json,
)

EXPORT_FORMATS = ("md", "json", "csv")
MAX_EXPORTS = 1000  # NAME.md, NAME.1.md ... NAME.999.md


def default_results_path(now: datetime) -> Path:
    """A new file per session under the user's data folder (~/.local/share/lora-tui)."""
    from platformdirs import user_data_path

    return user_data_path("lora-tui") / "results" / f"results-{now:%Y%m%d-%H%M%S}.jsonl"


LONGEST_LINE = 1 << 24  # a "line" longer than 16 MiB is no line of ours


class ResultsError(ArtifactError):
    """A results file refused (it is an input, or not a results file), in one line."""


def _parsed(line: bytes) -> tuple[bool, Record | None]:
    """(whether the line is JSON, the record it holds or None: ``records.from_json`` says
    what a results line is)."""
    try:
        value = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False, None
    try:
        return True, from_json(value)
    except NotARecord:
        return True, None


def _results_end(handle: BinaryIO, path: Path) -> tuple[int, bool]:
    """Where the results in ``handle`` end (its size, or where a half-written last line
    begins) and whether the last line lacks only its newline. ``ResultsError`` when it is
    not a results file: its first line must be a results line, and no line may be JSON of
    another kind. A line that is not JSON at all is damage (a write an older version cut
    short), which readers skip; only when it is the last, unended line is it cut off."""
    number = end = records = 0
    unended_record = False
    while line := handle.readline(LONGEST_LINE):
        number += 1
        whole = line.endswith(b"\n")
        if not whole and len(line) == LONGEST_LINE:  # too long to judge: left to readers
            if records == 0:
                raise _not_results(path, number)
            rest, whole = _skip_rest_of_line(handle)
            if not whole:
                return end, False
            end += len(line) + rest
            continue
        if line.strip():
            is_json, record = _parsed(line)
            if record is not None:
                records += 1
                unended_record = not whole
            elif is_json or records == 0:
                raise _not_results(path, number)
            elif not whole:
                return end, False  # half a line: a write cut short
        end += len(line)
    return end, unended_record


def _skip_rest_of_line(handle: BinaryIO) -> tuple[int, bool]:
    """Read past the rest of a line: (its length, whether a newline ended it)."""
    length = 0
    while chunk := handle.readline(LONGEST_LINE):
        length += len(chunk)
        if chunk.endswith(b"\n"):
            return length, True
    return length, False


def _not_results(path: Path, number: int) -> ResultsError:
    return ResultsError(
        f"{path}: not a lora-tui results file (line {number} is not a results line); "
        "it is left as it is: choose another file for the results"
    )


class ResultsFile:
    """A results file open for appending. Opening it checks that it is one (else
    ``ResultsError``, the file untouched), cuts off a half-written last line and ends a
    last line that lacks only its newline."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._hashes: dict[Path, str] = {}  # appended from one thread at a time
        # O_NONBLOCK: a FIFO named as the results file is refused, not waited on.
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            self._fd = os.open(path, flags, 0o666)
        except OSError as err:
            raise ResultsError(f"{path}: cannot be opened for results ({err.strerror})") from None
        try:
            self._finish_last_line()
        except BaseException:
            os.close(self._fd)
            raise

    def _finish_last_line(self) -> None:
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            raise ResultsError(f"{self.path}: not a regular file; results need a file of their own")
        with os.fdopen(os.dup(self._fd), "rb") as handle:
            handle.seek(0)
            end, lacks_newline = _results_end(handle, self.path)
        if end < os.fstat(self._fd).st_size:
            os.ftruncate(self._fd, end)  # a half-written line, from a run killed mid-write
        elif lacks_newline:
            self._write_whole(b"\n")

    def sha256(self, program: Path) -> str:
        """The program's SHA-256, hashed once per file."""
        if program not in self._hashes:
            self._hashes[program] = sha256_file(program)
        return self._hashes[program]

    def append(
        self, record: Record, program: Path | None = None, sha256: str | None = None
    ) -> None:
        """Stamp the time and, on an answer, its program's path and SHA-256 (``sha256``: of
        the bytes the caller knows were loaded; else hashed here, once per program)."""
        now = datetime.now().isoformat(timespec="seconds")
        if isinstance(record, AnswerRecord):
            digest = (sha256 or self.sha256(program)) if program else None
            path = str(program) if program else None
            record = replace(record, time=now, program=path, program_sha256=digest)
        else:
            record = replace(record, time=now)
        line = json.dumps(record.to_json(), ensure_ascii=False) + "\n"
        self._write_whole(line.encode("utf-8"))

    def _write_whole(self, data: bytes) -> None:
        """Write and sync ``data`` whole, or not at all: ``os.write`` may write part of it
        (a full disk, a signal); the rest is written, and if that fails the file is cut
        back to where the line began, so no half line is left for the next to join."""
        start = os.fstat(self._fd).st_size
        try:
            written = 0
            while written < len(data):
                count = os.write(self._fd, data[written:])
                if count == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += count
            os.fsync(self._fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise

    def close(self) -> None:
        os.close(self._fd)


def warn_stderr(text: str) -> None:
    print_warning(Console(stderr=True, highlight=False), "lora-tui", text)


def read_results(path: Path, warn: Callable[[str], None] = warn_stderr) -> list[Record]:
    """Every results line of a results file, as its record. Lines that are not (a write
    cut short by an older version, a hand edit) are skipped, and ``warn`` is told so in
    one line."""
    records: list[Record] = []
    skipped: list[int] = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        _, record = _parsed(line)
        if record is not None:
            records.append(record)
        else:
            skipped.append(number)
    if skipped:
        shown = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
        warn(f"{path}: skipped {len(skipped)} line(s) that are not results lines ({shown})")
    return records


def check_results_target(path: Path, inputs: Iterable[Path]) -> None:
    """``ResultsError`` when ``path`` may not take results: it is one of the run's inputs
    (the same file by device and inode, or by resolved path when one is missing), or it
    exists and is not a results file. Nothing is opened for writing."""
    for source in inputs:
        if _same_file(path, source):
            raise ResultsError(
                f"{path}: is {source}, an input of this run; the results need a file of "
                "their own (nothing was written)"
            )
    if not path.exists():
        return
    if not path.is_file():
        raise ResultsError(f"{path}: not a regular file; the results need a file of their own")
    try:
        with path.open("rb") as handle:
            _results_end(handle, path)
    except OSError as err:
        raise ResultsError(f"{path}: cannot be read ({err.strerror})") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not there (yet)
        return a.resolve() == b.resolve()


# Beside a tokenizer.json, what its chat template and stop ids are read from.
CHAT_CONFIGS = (
    TOKENIZER_CONFIG_FILE,
    CHAT_TEMPLATE_FILE,
    GENERATION_CONFIG_FILE,
    MODEL_CONFIG_FILE,
)


def tokenizer_file(weights: Path, tokenizer: Path | None) -> Path:
    """``--tokenizer`` (a folder or its tokenizer.json), else the one beside the foundation."""
    source = tokenizer or weights.parent
    return source / TOKENIZER_FILE if source.is_dir() else source


def input_files(groups: Sequence[FoundationPrograms], tokenizer: Path | None) -> list[Path]:
    """Every file a run reads its programs from: the foundations, the programs, each
    tokenizer with its configs, and lora-export's manifest beside each foundation."""
    files: list[Path] = []
    for group in groups:
        file = tokenizer_file(group.weights, tokenizer)
        files += [group.weights, *group.programs, file, group.weights.parent / MANIFEST_FILE]
        files += [file.parent / name for name in CHAT_CONFIGS]
    return files


def answers_with_votes(records: Iterable[Record]) -> list[AnswerRecord]:
    """The answers, each with its vote filled in from its round's vote line: "win", "loss",
    "tie", "all bad", or None when nobody voted."""
    records = list(records)
    verdicts = {r.round: r.verdict for r in records if isinstance(r, VoteRecord)}
    answers = []
    for record in records:
        if not isinstance(record, AnswerRecord):
            continue
        verdict = verdicts.get(record.round)
        vote = record.vote
        if verdict in (TIE, ALL_BAD):
            vote = verdict
        elif verdict is not None:
            vote = "win" if verdict == record.adapter else "loss"
        answers.append(replace(record, vote=vote))
    return answers


def export_results(records: Iterable[Record], fmt: str) -> str:
    """The results as a Markdown report, a JSON document or a CSV table."""
    records = list(records)
    answers = answers_with_votes(records)
    tally = Tally.from_votes([r for r in records if isinstance(r, VoteRecord)])
    if fmt == "json":
        standings = [{**asdict(s), "elo": round(s.elo, 1)} for s in tally.ranked()]
        lines = [answer.to_json() for answer in answers]
        document = {"votes": tally.votes, "tally": standings, "answers": lines}
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for answer in answers:
            writer.writerow({**(answer.settings or {}), **answer.to_json()})
        return out.getvalue()
    if fmt == "md":
        return _markdown(answers, tally)
    raise ValueError(f"no export format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")


def _markdown(answers: list[AnswerRecord], tally: Tally) -> str:
    lines = ["# lora-tui results", ""]
    if tally.votes:
        lines += [f"## Tally ({tally.votes} votes)", ""]
        lines += ["| adapter | wins | ties | losses | all bad | Elo |", "|---|---|---|---|---|---|"]
        for s in tally.ranked():
            lines.append(
                f"| {s.adapter} | {s.wins} | {s.ties} | {s.losses} | {s.all_bad} | {s.elo:.0f} |"
            )
        lines.append("")
    lines += ["## Answers", ""]
    for answer in answers:
        speed = answer.decode_tok_s
        facts = [f"vote: {answer.vote}"] if answer.vote else []
        facts += [f"{speed} tok/s"] if speed else []
        lines += [f"### {answer.adapter}: {answer.prompt}", ""]
        lines += [f"_{' · '.join(facts)}_", ""] if facts else []
        lines += [answer.answer or "_(empty)_", ""]
    return "\n".join(lines)


class ResultsWriter:
    """Appends to a results file and exports it on a thread of its own, so the UI never
    waits on a disk (the first line of a program hashes its .pte, each line is synced).
    Exports run after every line queued before them. ``report(text, ok)`` says how an
    export went or why a line was not saved; it is called from the writer's thread."""

    def __init__(self, path: Path, report: Callable[[str, bool], None]) -> None:
        self.file = ResultsFile(path)
        self._report = report
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results")

    @property
    def path(self) -> Path:
        return self.file.path

    def append(self, record: Record | Callable[[], Record], program: Path | None) -> None:
        """``record`` may be a function that makes the line on the writer's thread: a prompt
        set's answer, whose regex may take a second to score, made there is off the UI's
        loop and still saved when the app quits meanwhile."""
        self._thread.submit(self._append, record, program)

    def export(self, fmt: str) -> None:
        self._thread.submit(self._export, fmt)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.file.close()

    def _append(self, record: Record | Callable[[], Record], program: Path | None) -> None:
        try:
            self.file.append(record() if callable(record) else record, program)
        except OSError as err:
            self._report(f"results not saved: {err}", False)

    def _export(self, fmt: str) -> None:
        try:
            records = read_results(self.path, lambda warning: self._report(warning, False))
            out = export_beside(self.path, fmt, export_results(records, fmt))
        except (OSError, ValueError) as err:
            self._report(f"export failed: {err}", False)
            return
        self._report(f"saved {out}", True)


def export_beside(results: Path, fmt: str, text: str) -> Path:
    """Write an export beside the results file under a name no file has yet: NAME.md, else
    NAME.1.md, NAME.2.md... It never replaces a file: neither one the user wrote nor an
    earlier export, which keeps what it said then."""
    first = results.with_suffix(f".{fmt}")
    if first == results:  # --results chose a name with this very suffix
        first = results.with_suffix(f".export.{fmt}")
    data = text.encode("utf-8")
    for number in range(MAX_EXPORTS):
        out = first.with_suffix(f".{number}.{fmt}") if number else first
        try:
            write_atomic(out, lambda handle: handle.write(data), replace=False)
        except FileExistsError:
            continue
        return out
    raise FileExistsError(f"{first}: it and {MAX_EXPORTS - 1} numbered exports exist already")
