"""A run's results store: the file ``eval --out`` names, each new answer saved in it with
what it ran over (the SHA-256 of its program, foundation and tokenizer), and with
``--resume`` the answers the file has already, known by those, the prompt and the settings
(``records.AnswerKey``). A saved answer that ended in an error or was cancelled is asked
again; a damaged line is skipped with a warning. The local run and the Ray sweep save
through the same store (``evaluate.run_eval``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.engine.types import GenerationSettings, ReplyEnd
from lora_tui.format import MANIFEST_FILE, Manifest, sha256_file
from lora_tui.judging.records import AnswerKey, AnswerRecord
from lora_tui.judging.results import (
    CHAT_CONFIGS,
    ResultsFile,
    read_results,
    tokenizer_file,
    warn_stderr,
)

# An answer that ended so is whole: ``eval --resume`` keeps it; an error or a cancelled
# answer is asked again.
FINISHED = frozenset({ReplyEnd.STOP, ReplyEnd.LENGTH, ReplyEnd.CONTEXT})


def run_identity(weights: Path, tokenizer: Path | None) -> dict[str, str]:
    """What an answer ran over besides its program, for its results line and ``--resume``:
    the foundation's SHA-256 (one read of the file: about 0.4 s for 540 MB) and the
    tokenizer's, over its file and the chat template and stop ids it is used with (from
    lora-export's manifest when one describes the foundation, else the configs beside the
    tokenizer). A missing config is hashed as missing."""
    file = tokenizer_file(weights, tokenizer)
    digest = hashlib.sha256(sha256_file(file).encode())
    manifest_path = weights.parent / MANIFEST_FILE
    manifest = Manifest.read(weights.parent) if manifest_path.is_file() else None
    if manifest is not None and manifest.foundation_file == weights.name:
        chat = [manifest.chat_template, manifest.bos_id, manifest.stop_ids]
        digest.update(json.dumps(chat).encode())
    else:
        for config in (file.parent / name for name in CHAT_CONFIGS):
            digest.update(sha256_file(config).encode() if config.is_file() else b"-")
    return {"foundation_sha256": sha256_file(weights), "tokenizer_sha256": digest.hexdigest()}


class ResultsStore:
    """The results file of a run (``path`` None: nothing is saved, nothing resumed).
    Opening it checks and mends the file (``ResultsFile``); ``resume`` reads the answers
    it has."""

    def __init__(
        self,
        path: Path | None,
        foundations: Sequence[FoundationPrograms],
        tokenizer: Path | None,
        settings: GenerationSettings,
        resume: bool = False,
        warn: Callable[[str], None] = warn_stderr,
    ) -> None:
        self.file = ResultsFile(path) if path is not None else None
        self.settings = asdict(settings)
        self.tokenizer = tokenizer
        self.foundation_of = {p: g.weights for g in foundations for p in g.programs}
        self.identities: dict[Path, dict[str, str]] = {}  # foundation -> run_identity
        self.hashes: dict[Path, str] = {}  # a program's SHA-256, when there is no file
        self.answered: dict[AnswerKey, AnswerRecord] = {}
        if resume and self.file is not None:
            try:
                records = read_results(self.file.path, warn)
            except BaseException:
                self.close()
                raise
            finished = [r for r in records if isinstance(r, AnswerRecord) and r.end in FINISHED]
            self.answered = {r.key(): r for r in finished}

    @property
    def path(self) -> Path | None:
        return self.file.path if self.file is not None else None

    def sha256(self, program: Path) -> str:
        """The program's SHA-256, hashed once per run."""
        if self.file is not None:
            return self.file.sha256(program)
        if program not in self.hashes:
            self.hashes[program] = sha256_file(program)
        return self.hashes[program]

    def identity(self, program: Path) -> dict[str, str]:
        """The SHA-256 of the program's foundation and tokenizer, hashed once per run."""
        weights = self.foundation_of[program]
        if weights not in self.identities:
            self.identities[weights] = run_identity(weights, self.tokenizer)
        return self.identities[weights]

    def earlier(self, prompt: str, program: Path) -> AnswerRecord | None:
        """The answer the file has to ``prompt`` on this program over this foundation and
        tokenizer, with this run's settings (``--resume``); else None."""
        if not self.answered:
            return None
        identity = self.identity(program)
        key = AnswerKey.of(
            prompt,
            self.sha256(program),
            identity["foundation_sha256"],
            identity["tokenizer_sha256"],
            self.settings,
        )
        return self.answered.get(key)

    def save(self, record: AnswerRecord, program: Path, sha256: str | None = None) -> None:
        """Append a new answer with what it ran over (``sha256``: of the program the backend
        says it loaded)."""
        if self.file is not None:
            self.file.append(replace(record, **self.identity(program)), program, sha256)

    def kept(self, answered: int, total: int) -> str:
        """What a stopped run leaves: how many answers are saved, and how to go on."""
        if self.file is None:
            return f"{answered} of {total} answers were given, none saved (no --out)"
        return (
            f"{answered} of {total} answers are saved in {self.file.path}; --resume goes on "
            "from there"
        )

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()
