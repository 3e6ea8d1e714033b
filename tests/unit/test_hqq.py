"""The blocked HQQ scale search writes torchao's bytes: the same int8 values and scales for
8da8w (a scale per row), 8da4w (int4 in groups of 32) and the int8 embedding, whatever
the blocks, the rounds run or the threads torch has."""

from __future__ import annotations

import pytest
import torch
from torchao.quantization.quant_primitives import (
    _choose_qparams_and_quantize_scale_only_hqq as torchao_hqq,
)

from exporter import hqq


def weight(rows: int, cols: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=generator) * 0.02


def same_as_torchao(tensor: torch.Tensor, group: int, qmin: int, qmax: int, **kwargs) -> None:
    expected_q, expected_scale = torchao_hqq(tensor, [1, group], qmin, qmax, **kwargs)
    q, scale = hqq.choose_qparams_and_quantize_scale_only_hqq(
        tensor, [1, group], qmin, qmax, original=torchao_hqq, **kwargs
    )
    assert torch.equal(q.to(torch.int8), expected_q.to(torch.int8))  # torchao makes it int8
    assert scale.dtype == expected_scale.dtype and torch.equal(scale, expected_scale)


@pytest.mark.parametrize(
    ("rows", "cols", "group", "qmin", "qmax"),
    [
        (300, 256, 256, -128, 127),  # 8da8w: one scale per row; blocks of 16 rows, a short last
        (257, 512, 512, -128, 127),  # a last block of one row
        (300, 256, 32, -8, 7),  # 8da4w: int4 in groups of 32
        (64, 4096, 4096, -128, 127),  # rows longer than a block: a row at a time
    ],
)
def test_blocks_of_rows_give_torchaos_bytes(
    rows: int, cols: int, group: int, qmin: int, qmax: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hqq, "BLOCK_ELEMENTS", 4096)
    same_as_torchao(weight(rows, cols, seed=rows + cols), group, qmin, qmax)


def test_the_rounds_stop_where_torchaos_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows meet only in when the rounds stop. With a looser tolerance torchao stops
    early, and here the first block of 8 rows would stop after round 6 on its own, the
    whole weight after round 8: every block must run to the weight's round."""
    monkeypatch.setattr(hqq, "BLOCK_ELEMENTS", 2048)
    tensor = weight(96, 256, seed=3)
    for tolerance in (1e-1, 1e-3, 1e-5):
        same_as_torchao(tensor, 32, -8, 7, early_stop_tol=tolerance)
    same_as_torchao(tensor, 256, -128, 127, iters=3)


def test_zero_rows_and_bfloat16_as_torchao() -> None:
    tensor = weight(40, 128, seed=5)
    tensor[7] = 0.0  # a row of zeros: the scale stays at its floor
    same_as_torchao(tensor, 32, -8, 7)
    same_as_torchao(tensor.to(torch.bfloat16), 128, -128, 127)


def test_what_it_does_not_block_goes_to_torchao() -> None:
    one_value = weight(1, 64, seed=6)  # one sum in all, which torch may split across threads
    same_as_torchao(one_value, 64, -128, 127)
    with pytest.raises(AssertionError):  # torchao's own refusal of a 3-D tensor
        hqq.choose_qparams_and_quantize_scale_only_hqq(
            torch.zeros(2, 2, 2), [1, 2], -8, 7, original=torchao_hqq
        )


def test_quantizing_a_model_inside_gives_the_same_weights_and_restores_torchao() -> None:
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quantize_.workflows.intx import intx_unpacked_to_int8_tensor

    def quantized(bits: torch.dtype, granularity: object, blocked: bool) -> torch.Tensor:
        linear = torch.nn.Linear(256, 96, bias=False)
        with torch.no_grad():
            linear.weight.copy_(weight(96, 256, seed=7))
        config = Int8DynamicActivationIntxWeightConfig(
            weight_dtype=bits,
            weight_granularity=granularity,
            intx_choose_qparams_algorithm="hqq_scale_only",
        )
        with hqq.blocked_hqq() if blocked else torch.no_grad():
            quantize_(linear, config)
        return linear.weight

    for bits, granularity in ((torch.int8, PerAxis(0)), (torch.int4, PerGroup(32))):
        ours, theirs = quantized(bits, granularity, True), quantized(bits, granularity, False)
        assert torch.equal(ours.qdata, theirs.qdata) and torch.equal(ours.scale, theirs.scale)
    assert intx_unpacked_to_int8_tensor._choose_qparams_and_quantize_scale_only_hqq is torchao_hqq
