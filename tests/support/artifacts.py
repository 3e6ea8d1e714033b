"""The tiny fixtures' shape: what the integration tier's session fixtures build."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


MAX_CONTEXT = 128


@dataclass
class TinyArtifacts:
    base_dir: Path
    adapters: dict[str, Path]  # adapter name -> PEFT directory
    out: Path

    @property
    def foundation(self) -> Path:
        return self.out / "foundation.ptd"

    def program(self, name: str) -> Path:
        return self.out / f"{name}.pte"
