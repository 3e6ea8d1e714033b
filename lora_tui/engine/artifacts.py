"""Find and check what lora-export wrote, before any program is handed to the runtime.

The runtime loads lazily and reports a wrong or damaged file late and tersely (or crashes),
so the headers are checked here first, each failure becoming one line naming the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from exporter.errors import ExportError
from exporter.manifest import Manifest, ProgramEntry
from lora_tui.engine.chat import ChatFormat
from lora_tui.engine.types import EngineError

_PTE_MAGIC, _PTE_HEADER = b"ET", b"eh00"  # flatbuffer id "ET12" at 4..8, then extended header
_PTD_MAGIC, _PTD_HEADER = b"FT", b"FH01"


class TokenEmbeddings:
    """The token-embedding table that every program of a foundation shares.

    The programs take embeddings, not token ids. The table is memory-mapped read-only once
    per process, so its pages are counted once in RSS and only the rows of tokens actually
    used are ever read in.
    """

    def __init__(self, path: Path, vocab_size: int, dim: int) -> None:
        if not path.is_file():
            raise EngineError(f"{path}: no such file (the token embeddings lora-export writes)")
        try:
            table = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise EngineError(f"{path}: damaged or truncated ({err})") from None
        if table.shape != (vocab_size, dim) or table.dtype != np.float32:
            raise EngineError(
                f"{path}: holds {table.dtype} {table.shape}, not float32 ({vocab_size}, {dim})"
            )
        self.path = path
        self.table = table

    def __call__(self, tokens: list[int]) -> torch.Tensor:
        """Embeddings of ``tokens`` as the programs take them: [1, len(tokens), dim]."""
        return torch.from_numpy(np.ascontiguousarray(self.table[tokens]))[None]


@dataclass
class Foundation:
    path: Path
    manifest: Manifest
    chat: ChatFormat
    embeddings: TokenEmbeddings

    def entry_for(self, program: Path) -> tuple[str, ProgramEntry | None]:
        """The program's name and manifest entry (None for a program the manifest does not list)."""
        found = self.manifest.program_named(program.name)
        return found if found else (program.stem, None)


def open_foundation(weights: Path, tokenizer: Path | None = None) -> Foundation:
    if not weights.is_file():
        raise EngineError(f"{weights}: no such file")
    try:
        manifest = Manifest.read(weights.parent)
    except ExportError as err:
        raise EngineError(str(err)) from None
    expected = manifest.foundation_size_bytes
    _check_data_file(weights, expected)
    chat = ChatFormat.load(
        tokenizer or weights.parent / manifest.tokenizer_file,
        manifest.chat_template,
        manifest.stop_ids,
        manifest.bos_id,
    )
    shape = manifest.shape
    embeddings = TokenEmbeddings(
        weights.parent / manifest.embeddings_file, shape["vocab_size"], shape["dim"]
    )
    return Foundation(weights, manifest, chat, embeddings)


def check_program_file(path: Path) -> None:
    """A .pte must exist, carry ExecuTorch's header, and be as long as the header says."""
    if not path.is_file():
        raise EngineError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(40)
    if len(head) < 40 or head[4:6] != _PTE_MAGIC or head[8:12] != _PTE_HEADER:
        raise EngineError(f"{path}: not an ExecuTorch program (.pte)")
    program_size, segment_base, segment_size = struct.unpack_from("<QQQ", head, 16)
    needed = segment_base + segment_size if segment_size else program_size
    actual = path.stat().st_size
    if actual < needed:
        raise EngineError(f"{path}: truncated ({actual} of {needed} bytes)")


def _check_data_file(path: Path, expected: int) -> None:
    with path.open("rb") as handle:
        head = handle.read(48)
    if len(head) < 48 or head[4:6] != _PTD_MAGIC or head[8:12] != _PTD_HEADER:
        raise EngineError(f"{path}: not an ExecuTorch weights file (.ptd)")
    segment_base, segment_size = struct.unpack_from("<QQ", head, 32)
    actual = path.stat().st_size
    if actual < max(segment_base + segment_size, expected):
        raise EngineError(
            f"{path}: truncated ({actual} of {max(segment_base + segment_size, expected)} bytes)"
        )
    if actual != expected:
        raise EngineError(f"{path}: {actual} bytes, but its manifest says {expected}")
