"""The results file: one JSON line per answer, which ``lora-tui eval`` and the app both
append, and one per blind vote. Each line goes out in one write and is synced, so a run or
a session that dies loses at most the answer it was writing, and every line already there
parses. A vote line names its round; the answers of that round carry the same ``round``.

It exports to Markdown, JSON and CSV, each answer with its vote and the tally."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from lora_tui.arena import ALL_BAD, TIE, Tally
from lora_tui.common.files import write_text_atomic
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import AdapterInfo, GenerationSettings
from lora_tui.format import sha256_file

Record = dict[str, Any]
VOTE = "vote"  # the ``type`` of a vote line; an answer line has none
EXPORT_FORMATS = ("md", "json", "csv")
CSV_COLUMNS = [
    "time",
    "round",
    "prompt",
    "adapter",
    "vote",
    "answer",
    "end",
    "ttft_s",
    "decode_tok_s",
    "new_tokens",
    "temperature",
    "top_p",
    "seed",
    "max_new_tokens",
    "quantization",
    "program",
    "program_sha256",
    "foundation",
]


def default_results_path(now: datetime) -> Path:
    """A new file per session under the user's data folder (~/.local/share/lora-tui)."""
    from platformdirs import user_data_path

    return user_data_path("lora-tui") / "results" / f"results-{now:%Y%m%d-%H%M%S}.jsonl"


def reply_record(
    prompt: str, adapter: str, done: ReplyDone, settings: GenerationSettings
) -> dict[str, Any]:
    """One answer as a results line: the prompt, the reply, its speed and its settings."""
    stats = done.stats
    return {
        "prompt": prompt,
        "adapter": adapter,
        "answer": done.text,
        "end": str(done.end),
        "ttft_s": round(stats.ttft_s, 3) if stats else None,
        "decode_tok_s": round(stats.decode_tok_s, 2) if stats else None,
        "new_tokens": stats.new_tokens if stats else 0,
        "settings": asdict(settings),
        "vote": None,
    }


def origin_fields(info: AdapterInfo | None) -> dict[str, Any]:
    """Which foundation an answer ran over, and its quantization, for its results line."""
    return {
        "foundation": info.foundation if info else None,
        "quantization": info.quantization if info else None,
    }


def vote_record(round_id: str, prompt: str, adapters: list[str], verdict: str) -> dict[str, Any]:
    """A blind vote: ``verdict`` is the winner's name, ``TIE`` or ``ALL_BAD``; ``adapters``
    are the panes in the order they were shown."""
    return {
        "type": VOTE,
        "round": round_id,
        "prompt": prompt,
        "adapters": adapters,
        "verdict": verdict,
    }


def answer_key(record: dict[str, Any]) -> tuple[str, str | None, str]:
    """What makes two answer lines the same answer: the prompt, the program's SHA-256 and
    the settings (``eval --resume`` skips an answer whose key the file has)."""
    settings = json.dumps(record.get("settings"), sort_keys=True)
    return record.get("prompt", ""), record.get("program_sha256"), settings


class ResultsFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._hashes: dict[Path, str] = {}  # appended from one thread at a time
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._drop_partial_line()

    def _drop_partial_line(self) -> None:
        """A run killed mid-write can leave a line without its end: cut it off, so every
        line parses and the next answer starts a line of its own."""
        size = os.fstat(self._fd).st_size
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        tail = os.pread(self._fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        os.ftruncate(self._fd, size - len(tail) + tail.rfind(b"\n") + 1)

    def sha256(self, program: Path) -> str:
        """The program's SHA-256, hashed once per file."""
        if program not in self._hashes:
            self._hashes[program] = sha256_file(program)
        return self._hashes[program]

    def append(self, record: dict[str, Any], program: Path | None) -> None:
        """Add the program's path and SHA-256 (hashed once per program) and the time."""
        line = {
            **record,
            "program": str(program) if program else None,
            "program_sha256": self.sha256(program) if program else None,
            "time": datetime.now().isoformat(timespec="seconds"),
        }
        os.write(self._fd, (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every whole line of a results file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def answers_with_votes(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answer lines, each with its vote filled in from its round's vote line: "win",
    "loss", "tie", "all bad", or None when nobody voted."""
    verdicts = {r["round"]: r["verdict"] for r in records if r.get("type") == VOTE}
    answers = []
    for record in records:
        if record.get("type") == VOTE:
            continue
        verdict = verdicts.get(record.get("round"))
        vote = record.get("vote")
        if verdict in (TIE, ALL_BAD):
            vote = verdict
        elif verdict is not None:
            vote = "win" if verdict == record["adapter"] else "loss"
        answers.append({**record, "vote": vote})
    return answers


def export_results(records: list[dict[str, Any]], fmt: str) -> str:
    """The results as a Markdown report, a JSON document or a CSV table."""
    answers = answers_with_votes(records)
    tally = Tally.from_votes([r for r in records if r.get("type") == VOTE])
    if fmt == "json":
        standings = [{**asdict(s), "elo": round(s.elo, 1)} for s in tally.ranked()]
        document = {"votes": tally.votes, "tally": standings, "answers": answers}
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for answer in answers:
            writer.writerow({**answer.get("settings", {}), **answer})
        return out.getvalue()
    if fmt == "md":
        return _markdown(answers, tally)
    raise ValueError(f"no export format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")


def _markdown(answers: list[dict[str, Any]], tally: Tally) -> str:
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
        speed = answer.get("decode_tok_s")
        facts = [f"vote: {answer['vote']}"] if answer.get("vote") else []
        facts += [f"{speed} tok/s"] if speed else []
        lines += [f"### {answer['adapter']}: {answer['prompt']}", ""]
        lines += [f"_{' · '.join(facts)}_", ""] if facts else []
        lines += [answer.get("answer") or "_(empty)_", ""]
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
        out = self.path.with_suffix(f".{fmt}")
        if out == self.path:  # --results chose a name with this very suffix
            out = self.path.with_suffix(f".export.{fmt}")
        try:
            write_text_atomic(out, export_results(read_results(self.path), fmt))
        except (OSError, ValueError) as err:
            self._report(f"export failed: {err}", False)
            return
        self._report(f"saved {out}", True)
