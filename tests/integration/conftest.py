"""Session fixtures: a tiny random Llama, PEFT adapters over it, and their exported artifacts.

Built once per test session so exporter, engine and UI tests share them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.pipeline import ExportRequest, run_export
from tests.support.artifacts import (
    ALL_TARGETS,
    MAX_CONTEXT,
    Q8DA4W,
    TinyArtifacts,
    export_quantized,
)
from tests.support.tiny import build_adapter, build_base


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="session")
def tiny_adapters(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        # Every projection, one rank and alpha.
        "full": build_adapter(tiny_base, root / "full", r=8, alpha=16, targets=ALL_TARGETS, seed=1),
        # Only some projections, another rank and alpha.
        "partial": build_adapter(
            tiny_base,
            root / "partial",
            r=4,
            alpha=32,
            targets=["q_proj", "v_proj", "down_proj"],
            seed=2,
        ),
    }


@pytest.fixture(scope="session")
def tiny_artifacts(
    tiny_base: Path, tiny_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> TinyArtifacts:
    out = tmp_path_factory.mktemp("artifacts") / "out"
    run_export(
        ExportRequest(
            base=tiny_base,
            adapters=list(tiny_adapters.items()),
            out=out,
            base_program=True,
            max_context=MAX_CONTEXT,
        )
    )
    return TinyArtifacts(tiny_base, tiny_adapters, out)


@pytest.fixture(scope="session")
def quantized(tiny_artifacts: TinyArtifacts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 'full' adapter over an 8da4w foundation of the same tiny base."""
    return export_quantized(tiny_artifacts, tmp_path_factory.mktemp("quantized") / "out", Q8DA4W)


@pytest.fixture(scope="session")
def other_foundation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base program of another base (other weights): a foundation the tiny programs
    do not fit."""
    root = tmp_path_factory.mktemp("other")
    base = build_base(root / "base", seed=5)
    out = root / "out"
    run_export(
        ExportRequest(base=base, adapters=[], out=out, base_program=True, max_context=MAX_CONTEXT)
    )
    return out


@pytest.fixture(scope="session")
def export_llm_program(
    tiny_base: Path, tiny_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The 'full' adapter exported by ExecuTorch's own export_llm (its foundation.ptd beside
    it), as a user of ExecuTorch's LoRA flow has it. About a minute."""
    from tests.support.export_llm import export_with_export_llm

    out = tmp_path_factory.mktemp("export_llm")
    return export_with_export_llm(tiny_base, tiny_adapters["full"], out, "llm_full", MAX_CONTEXT)
