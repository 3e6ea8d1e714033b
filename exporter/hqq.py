"""torchao's HQQ scale search, computed a block of rows at a time: the same numbers, bit for
bit, in about a thirteenth of the time.

ExecuTorch quantizes 8da4w and 8da8w weights (and the int8 embedding table) with torchao's
``hqq_scale_only``: up to 20 rounds of quantize, least-squares scale and a convergence
check, each round seven whole-tensor operations. torchao runs every round over the whole
weight, so each operation streams it through memory and allocates a fresh temporary of its
size. For a Llama-3.2-1B-shaped 8da8w base (49,152-token vocabulary) it took 219 s of a
443 s first export, and 16.6 s blocked (py-spy, both beside other work on the 2 cores).

A row's scale depends only on that row; the rows meet only in when the rounds stop (the
largest change of any scale under the tolerance). So each block of rows (4 MiB) runs every
round while it sits in cache, keeping each round's scales and its largest change; then the
round torchao would stop at is found from all blocks, and its scales quantize the weight.
Every operation is torch's own on the same row, with one thread: a row's sums add up in
the same order as torchao's (which splits work across rows only), so the int8 values and
scales are the same bytes (tests/unit/test_hqq.py checks them against torchao's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

BLOCK_ELEMENTS = 1 << 20  # fp32 values a block of rows holds: 4 MiB, with its two work buffers
_EPS = torch.finfo(torch.float32).eps


def choose_qparams_and_quantize_scale_only_hqq(
    hp_tensor: torch.Tensor,
    block_size: list[int],
    qmin: int,
    qmax: int,
    *,
    iters: int = 20,
    stochastic: bool = False,
    early_stop_tol: float = 1e-5,
    original: object = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """torchao's ``_choose_qparams_and_quantize_scale_only_hqq`` (``original``), by blocks
    of rows: qdata (int8 here, int32 there; torchao makes it int8 next) and the scales.
    Anything but the deterministic 2-D case goes to ``original``."""
    n_rows, n_cols = hp_tensor.shape if hp_tensor.ndim == 2 else (0, 0)
    group_size = int(block_size[1]) if len(block_size) == 2 else 0
    usable = (
        not stochastic
        and n_rows > 0
        and group_size > 0
        and block_size[0] == 1
        and n_cols % group_size == 0
        and qmin < qmax
        # One output value in all: torch may split that one sum across threads.
        and n_rows * (n_cols // group_size) > 1
    )
    if not usable:
        assert callable(original)
        return original(  # type: ignore[no-any-return]
            hp_tensor,
            block_size,
            qmin,
            qmax,
            iters=iters,
            stochastic=stochastic,
            early_stop_tol=early_stop_tol,
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each block is small: one thread, not two waiting on each other
    try:
        with torch.no_grad():
            qdata, scale = _blocked(hp_tensor, group_size, qmin, qmax, iters, early_stop_tol)
    finally:
        torch.set_num_threads(threads)
    return qdata, scale.to(hp_tensor.dtype)


def _blocked(
    hp_tensor: torch.Tensor, group_size: int, qmin: int, qmax: int, iters: int, tolerance: float
) -> tuple[torch.Tensor, torch.Tensor]:
    n_rows, n_cols = hp_tensor.shape
    groups = hp_tensor.to(torch.float32).contiguous().view(n_rows, -1, group_size)
    rounds = max(1, iters)
    rows = max(1, BLOCK_ELEMENTS // n_cols)
    scales = torch.empty(rounds, n_rows, groups.shape[1])
    largest_change = torch.full((rounds,), -torch.inf)
    work = torch.empty(min(rows, n_rows), *groups.shape[1:])
    product = torch.empty_like(work)
    qabs = max(abs(qmin), abs(qmax)) or 1
    for start in range(0, n_rows, rows):
        block = groups[start : start + rows]
        q, p = work[: len(block)], product[: len(block)]
        scale = (block.abs().amax(dim=2) / qabs).clamp_min(_EPS)
        previous = scale.clone()
        for step in range(rounds):
            _quantize(block, scale, qmin, qmax, out=q)
            numerator = torch.mul(block, q, out=p).sum(dim=2, dtype=torch.float32)
            denominator = torch.mul(q, q, out=p).sum(dim=2, dtype=torch.float32)
            scale = torch.where(denominator > 0, numerator / denominator, previous)
            scale = scale.clamp_min(_EPS).abs()
            change = ((scale - previous).abs() / previous.clamp_min(_EPS)).max()
            largest_change[step] = torch.maximum(largest_change[step], change)
            scales[step, start : start + len(block)] = scale
            previous = scale
    # torchao stops after the first round whose largest change is under the tolerance.
    stop = next((s for s in range(rounds) if largest_change[s] < tolerance), rounds - 1)
    final = scales[stop].clone()
    del scales
    qdata = torch.empty(groups.shape, dtype=torch.int8)
    for start in range(0, n_rows, rows):
        block = groups[start : start + rows]
        scale = final[start : start + rows]
        qdata[start : start + len(block)] = _quantize(
            block, scale, qmin, qmax, out=work[: len(block)]
        )
    return qdata.view(n_rows, n_cols), final


def _quantize(
    block: torch.Tensor, scale: torch.Tensor, qmin: int, qmax: int, *, out: torch.Tensor
) -> torch.Tensor:
    """``round(block / scale).clamp(qmin, qmax)`` as torchao computes it, into ``out``."""
    torch.div(block, scale.unsqueeze(-1), out=out)
    return out.round_().clamp_(qmin, qmax)


@contextlib.contextmanager
def blocked_hqq() -> Iterator[None]:
    """torchao's int-x weights quantized with the blocked HQQ while inside."""
    from torchao.quantization.quantize_.workflows.intx import intx_unpacked_to_int8_tensor

    original = intx_unpacked_to_int8_tensor._choose_qparams_and_quantize_scale_only_hqq

    def blocked(*args, **kwargs):  # type: ignore[no-untyped-def]
        return choose_qparams_and_quantize_scale_only_hqq(*args, **kwargs, original=original)

    intx_unpacked_to_int8_tensor._choose_qparams_and_quantize_scale_only_hqq = blocked
    try:
        yield
    finally:
        intx_unpacked_to_int8_tensor._choose_qparams_and_quantize_scale_only_hqq = original
