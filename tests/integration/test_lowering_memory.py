"""A lowering keeps no second copy of the base's weights: XNNPACK is handed the partitions
with the weights the exporter holds, not deep copies of them (ExecuTorch copies each
partition's program for its backend; with a 1B model that copy is 4 GB)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from exporter.base import load_base
from exporter.lower import ProgramSpec, lower_program
from lora_tui.format import FP32, Quantization


@pytest.mark.parametrize("quantization", [FP32, Quantization("8da8w", 0)], ids=str)
def test_xnnpack_is_handed_the_weights_not_copies(
    tiny_base: Path, quantization: Quantization, monkeypatch: pytest.MonkeyPatch
) -> None:
    from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend

    base = load_base(tiny_base)
    handed: list[torch.Tensor] = []
    preprocess = XnnpackBackend.preprocess

    def spy(edge_program, compile_specs):  # type: ignore[no-untyped-def]
        handed.extend(t for t in edge_program.state_dict.values() if isinstance(t, torch.Tensor))
        return preprocess(edge_program, compile_specs)

    monkeypatch.setattr(XnnpackBackend, "preprocess", staticmethod(spy))
    spec = ProgramSpec(base.shape, base.rope, 64, 1, None, (2,), quantization=quantization)
    kept: list[torch.Tensor] = []
    if quantization == FP32:  # the program's parameters are the base's own tensors
        kept = list(base.weights.values())
        lower_program(spec, base.weights)
    else:  # quantized once, before tracing: the partitions' weights are those tensors
        from exporter import lower

        build = lower._build_model

        def keep(spec, weights):  # type: ignore[no-untyped-def]
            model = build(spec, weights)
            kept.extend(lower.model_state(model).values())
            return model

        monkeypatch.setattr(lower, "_build_model", keep)
        lower_program(spec, base.weights)
    storages = {t.untyped_storage().data_ptr() for t in kept}
    assert handed, "XNNPACK was handed no weights"
    copies = [t.shape for t in handed if t.untyped_storage().data_ptr() not in storages]
    assert not copies, f"{len(copies)} of {len(handed)} weights were copies, e.g. {copies[:3]}"


def test_sharing_the_weights_gives_the_same_files(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XNNPACK only reads the weights it is handed: lowered with ExecuTorch's own copies,
    the program and the foundation are the same bytes."""
    import contextlib

    base = load_base(tiny_base)
    spec = ProgramSpec(base.shape, base.rope, 64, 1, None, (2,))
    files = {}
    for way in ("shared", "copied"):
        if way == "copied":
            monkeypatch.setattr("exporter.lower._partitions_share_weights", contextlib.nullcontext)
        lowered = lower_program(spec, base.weights)
        (tmp_path / way).mkdir()
        lowered.write_program(tmp_path / way / "program.pte")
        lowered.write_foundation(tmp_path / way / "foundation.ptd")
        files[way] = [(tmp_path / way / n).read_bytes() for n in ("program.pte", "foundation.ptd")]
    assert files["shared"] == files["copied"]
