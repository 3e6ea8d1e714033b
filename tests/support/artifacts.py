"""The tiny fixtures' shape: what the integration tier's session fixtures build."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from lora_tui.format import Quantization

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


Q8DA4W = Quantization("8da4w", 32)


def export_quantized(tiny_artifacts: TinyArtifacts, out: Path, quantization: Quantization) -> Path:
    """The tiny 'full' adapter over a foundation quantized so (no base program)."""
    from exporter.pipeline import ExportRequest, run_export

    adapters = [("full", tiny_artifacts.adapters["full"])]
    request = ExportRequest(tiny_artifacts.base_dir, adapters, out, False, MAX_CONTEXT)
    run_export(replace(request, quantization=quantization))
    return out
