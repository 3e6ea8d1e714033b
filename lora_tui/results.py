"""The results file: one JSON line per answer, which ``lora-tui eval`` and the app both
append. Each line goes out in one write and is synced, so a run or a session that dies
loses at most the answer it was writing, and every line already there parses."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from lora_tui.artifact_format import sha256_file
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import GenerationSettings


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


class ResultsFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._hashes: dict[Path, str] = {}  # appended from one thread at a time
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, record: dict[str, Any], program: Path | None) -> None:
        """Add the program's path and SHA-256 (hashed once per program) and the time."""
        if program is not None and program not in self._hashes:
            self._hashes[program] = sha256_file(program)
        line = {
            **record,
            "program": str(program) if program else None,
            "program_sha256": self._hashes.get(program) if program else None,
            "time": datetime.now().isoformat(timespec="seconds"),
        }
        os.write(self._fd, (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every whole line of a results file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
