"""The Ray sweep's shards and its refusal without Ray, with no cluster and no model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lora_tui.engine.types import EngineError
from lora_tui.evaluate import PromptCase
from lora_tui.sweep import RAY_MISSING, SweepProgram, connect, make_shards

A, B = Path("fp32/foundation.ptd"), Path("q4/foundation.ptd")


def test_shards_cover_every_wanted_answer_once_in_small_pieces() -> None:
    programs = [SweepProgram(A, Path("fp32/nobel.pte"), "nobel · fp32")]
    programs.append(SweepProgram(B, Path("q4/nobel.pte"), "nobel · 8da4w"))
    cases = [PromptCase(f"q{i}", "g") for i in range(10)]
    answered = {("q3", "nobel · fp32"), ("q4", "nobel · fp32")}
    shards = make_shards(programs, cases, lambda i, p: (f"q{i}", p.name) not in answered, 4)
    covered = [(i, s.program.name) for s in shards for i, _ in s.cases]
    assert len(covered) == len(set(covered)) == 18
    assert all(len(s.cases) <= 4 for s in shards)
    assert (3, "nobel · fp32") not in covered and (3, "nobel · 8da4w") in covered
    assert {s.program.weights for s in shards} == {A, B}


def test_without_ray_the_sweep_is_refused_in_one_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(EngineError) as refused:
        connect(None)
    assert str(refused.value) == RAY_MISSING == "--ray needs Ray: pip install 'lora-tui[ray]'"
