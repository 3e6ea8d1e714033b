"""Open a foundation weight file and what is needed to talk to its programs.

Any ExecuTorch LLM program over a foundation ``.ptd`` opens, whoever exported it. The
tokenizer comes from ``--tokenizer`` (a Hugging Face tokenizer folder or a
``tokenizer.json``) or from beside the ``.ptd``; the chat template and stop ids from the
tokenizer's own files. A ``manifest.json`` from lora-export beside the ``.ptd`` adds what
only it knows (the base, each adapter's rank and targets) but is never required.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lora_tui.engine.chat import ChatFormat
from lora_tui.engine.scaled import scaled_entry
from lora_tui.format import (
    MANIFEST_FILE,
    Manifest,
    ProgramEntry,
    check_data_file,
)


@dataclass
class Foundation:
    path: Path
    manifest: Manifest | None  # lora-export's notes on this foundation, if it wrote them
    chat: ChatFormat

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    @property
    def quantization(self) -> str | None:
        """As lora-export's manifest names it ("fp32", "8da4w g32"); None without one."""
        return self.manifest.quantized.label if self.manifest is not None else None

    def entry_for(self, program: Path) -> tuple[str, ProgramEntry | None]:
        """The program's name, and its manifest entry when lora-export listed it here (a
        scaled copy of one in the cache: its source's entry, at its scale)."""
        found = self.manifest.program_named(program.name) if self.manifest else None
        if found and program.resolve().parent == self.path.resolve().parent:
            return found
        return program.stem, scaled_entry(program, self.manifest, self.path)


def open_foundation(weights: Path, tokenizer: Path | None = None) -> Foundation:
    manifest = _manifest_beside(weights)
    check_data_file(weights, manifest.foundation_size_bytes if manifest else None)
    chat = ChatFormat.from_files(tokenizer or weights.parent, manifest)
    return Foundation(weights, manifest, chat)


def _manifest_beside(weights: Path) -> Manifest | None:
    """lora-export's manifest, if it describes this very .ptd; damaged or old ones are refused."""
    if not (weights.parent / MANIFEST_FILE).is_file() or not weights.is_file():
        return None
    manifest = Manifest.read(weights.parent)
    return manifest if manifest.foundation_file == weights.name else None
