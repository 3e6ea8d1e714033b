"""Opening an ExecuTorch LLM program and reading what it says of itself: loading with
verification on, the one-token warm-up, and the facts (context, vocabulary, stop ids) its
method meta and constant methods give. The pre-flight checker and the engine both use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lora_tui import format as fmt
from lora_tui.engine.runtime import native
from lora_tui.engine.types import EngineError


def load_module(pte: Path, ptd: Path) -> Any:
    et = native()
    verified = et.Verification.InternalConsistency
    try:
        # _load_for_executorch drops its program_verification (ExecuTorch 1.5's pybindings
        # build the Module without it): a program with a flipped header byte loaded.
        # _load_program passes it on, so the program alone is verified there first (a few
        # ms; its weights in the .ptd are only named, and checked when the method loads).
        et._load_program(str(pte), program_verification=verified)
        return et._load_for_executorch(str(pte), data_path=str(ptd), program_verification=verified)
    except RuntimeError as err:
        raise EngineError(f"{pte}: could not load ({err})") from None


def token_input(tokens: list[int]) -> torch.Tensor:
    return torch.tensor([tokens], dtype=torch.long)


def position_input(pos: int) -> torch.Tensor:
    return torch.tensor([pos], dtype=torch.long)


def warm_up(module: Any, pte: Path, ptd: Path, tokens: Sequence[int] = (0,)) -> torch.Tensor:
    """Run ``tokens`` from position 0: loads the method and packs its weights now, so load
    time and memory are measured at load. What they leave in the KV cache is overwritten by
    the first real prefill, which starts at 0 too. Returns the logits."""
    try:
        return module.forward([token_input(list(tokens)), position_input(0)])[0]
    except RuntimeError as err:
        # NotFound (0x20) or InvalidExternalData (0x24): a weight the program names is not in
        # the .ptd, or not as the program expects it.
        if "0x20" in str(err) or "0x24" in str(err):
            raise EngineError(
                f"{pte}: needs weights that {ptd} does not hold (built over another foundation)"
            ) from None
        raise EngineError(f"{pte}: does not run over {ptd} ({err})") from None


def read_constant(module: Any, name: str) -> Any:
    if name not in module.method_names():
        return None
    value = module.run_method(name, [])
    return value[0] if isinstance(value, list | tuple) and len(value) == 1 else value


# ScalarType codes in ExecuTorch's method meta.
_LONG, _FLOAT = 4, 6


@dataclass(frozen=True)
class ProgramFacts:
    """What an LLM program says of itself, read from its method meta and constant methods."""

    max_context: int
    max_prefill: int
    vocab_size: int  # width of the logits
    bos_id: int | None
    eos_ids: tuple[int, ...]
    foundation_id: int | None  # lora-export's programs carry it; others do not

    @classmethod
    def of(cls, module: Any, pte: Path) -> ProgramFacts:
        """Refuses, in one line, a program that ExecuTorch's LLM runners could not run."""
        names = set(module.method_names())
        if fmt.FORWARD not in names:
            raise EngineError(f"{pte}: not an LLM program (it has no '{fmt.FORWARD}' method)")
        meta = module.method_meta(fmt.FORWARD)
        inputs = [meta.input_tensor_meta(i) for i in range(meta.num_inputs())]
        if len(inputs) != 2 or any(t.dtype() != _LONG for t in inputs):
            raise EngineError(
                f"{pte}: not an LLM program ('{fmt.FORWARD}' must take token ids and a "
                "position, both int64, as export_llm writes it)"
            )
        if meta.num_outputs() < 1 or meta.output_tensor_meta(0).dtype() != _FLOAT:
            raise EngineError(f"{pte}: not an LLM program ('{fmt.FORWARD}' returns no logits)")

        def constant(name: str) -> Any:
            return read_constant(module, name) if name in names else None

        if not constant(fmt.USE_KV_CACHE):
            raise EngineError(f"{pte}: has no KV cache ({fmt.USE_KV_CACHE}); lora-tui needs one")
        max_prefill = constant(fmt.MAX_SEQ_LEN)
        max_context = constant(fmt.MAX_CONTEXT_LEN) or max_prefill
        if not max_prefill:
            raise EngineError(f"{pte}: has no {fmt.MAX_SEQ_LEN} constant method")
        # The tokens' bound, not get_max_seq_len: lora-export's and export_llm's programs say
        # 128 there and take at most 127 tokens a call (128 fails to resize the input).
        bound = inputs[0].sizes()[-1] if inputs[0].sizes() else 1
        eos = constant(fmt.EOS_IDS)
        eos_ids = eos if isinstance(eos, list | tuple) else [] if eos is None else [eos]
        return cls(
            max_context=int(max_context),
            max_prefill=max(1, min(int(max_prefill), int(bound)))
            if constant(fmt.ENABLE_DYNAMIC_SHAPE)
            else 1,
            vocab_size=int(meta.output_tensor_meta(0).sizes()[-1]),
            bos_id=constant(fmt.BOS_ID),
            eos_ids=tuple(int(i) for i in eos_ids),
            foundation_id=constant(fmt.FOUNDATION_ID),
        )
