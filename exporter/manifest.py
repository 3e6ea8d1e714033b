"""The manifest lora-export writes beside the artifacts, and lora-tui reads.

It is the contract between the two packages: which base the foundation came from, how to
tokenize and template a chat, when to stop, and what each program holds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exporter.errors import ExportError

MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 2  # 2: the token embedding lives in its own file, outside the programs
EMBEDDINGS_FILE = "embeddings.npy"


@dataclass
class ProgramEntry:
    file: str
    kind: str  # "adapter" or "base"
    size_bytes: int
    rank: int | None = None
    alpha: float | None = None
    use_rslora: bool = False
    target_modules: list[str] = field(default_factory=list)
    source: str | None = None
    source_sha256: str | None = None
    adapter_size_bytes: int | None = None


@dataclass
class Manifest:
    base_source: str
    base_fingerprint: str  # hash of the base's shape and weights
    foundation_id: int  # every program built over this foundation returns it
    foundation_file: str
    foundation_sha256: str  # hash of the .ptd file itself
    foundation_size_bytes: int
    shape: dict[str, Any]
    max_context: int
    embeddings_file: str  # the token-embedding table, [vocab, dim] fp32, looked up by lora-tui
    tokenizer_file: str
    chat_template: str | None
    bos_id: int | None
    stop_ids: list[int]
    programs: dict[str, ProgramEntry] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT_VERSION:
                raise ExportError(f"{path}: manifest format {raw.get('format')} is not supported")
            programs = {name: ProgramEntry(**entry) for name, entry in raw.pop("programs").items()}
            return cls(**raw, programs=programs)
        except FileNotFoundError:
            raise ExportError(f"{path}: missing (not a lora-export output folder)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as err:
            raise ExportError(f"{path}: damaged manifest ({err})") from None

    def program_named(self, file_name: str) -> tuple[str, ProgramEntry] | None:
        for name, entry in self.programs.items():
            if entry.file == file_name:
                return name, entry
        return None


def foundation_id(base_fingerprint: str, max_context: int) -> int:
    """A 60-bit id of everything that decides the .ptd's contents and the programs' inputs,
    small enough for int64."""
    key = f"{base_fingerprint}:{max_context}:format{FORMAT_VERSION}".encode()
    return int(hashlib.sha256(key).hexdigest()[:15], 16)


def sha256_file(path: Path, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
