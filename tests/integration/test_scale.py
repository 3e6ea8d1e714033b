"""An adapter at another LoRA strength, for real (issue 44): on the tiny fixtures, scale 0
answers as the base program does, token for token; scale 1 is the adapter's own bytes;
another scale passes the pre-flight and loads as "full ×0.5", over fp32 and 8da4w; its copy
is made in the tool's cache, never in the export folder; ``lora-export --scale`` writes the
same bytes for shipping."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from exporter import cli
from lora_tui.engine import GenerationSettings, Message, ModelHost
from lora_tui.engine.scaled import scaled_copy
from lora_tui.format import Manifest
from tests.support.artifacts import MAX_CONTEXT, TinyArtifacts

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=24)
PROMPTS = ["Hello there", "Who won the Nobel prize in physics?"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LORA_TUI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def answers(host: ModelHost, name: str) -> list[tuple[str, int]]:
    replies = [host.answer(name, [Message("user", p)], GREEDY) for p in PROMPTS]
    return [(r.text, r.stats.new_tokens if r.stats else 0) for r in replies]


def test_scale_0_answers_as_the_base_and_1_is_the_adapter(
    tiny_artifacts: TinyArtifacts, cache: Path, tmp_path: Path
) -> None:
    export = sorted(p.name for p in tiny_artifacts.out.iterdir())
    full = tiny_artifacts.program("full")
    assert scaled_copy(full, 1.0) == full  # the same bytes: the adapter's own file
    started = time.perf_counter()
    zero = scaled_copy(full, 0.0)
    half = scaled_copy(full, 0.5)
    made_s = (time.perf_counter() - started) / 2
    print(f"scaled copy of {full.stat().st_size / 2**20:.1f} MiB: {made_s * 1000:.0f} ms")
    assert zero.is_relative_to(cache) and half.is_relative_to(cache)
    assert sorted(p.name for p in tiny_artifacts.out.iterdir()) == export
    host = ModelHost(tiny_artifacts.foundation, log_path=tmp_path / "engine.log")
    try:
        base = host.load(tiny_artifacts.program("base"))
        zero_info = host.load(zero)
        half_info = host.load(half)
        adapter = host.load(full)
        assert (zero_info.name, half_info.name) == ("full ×0", "full ×0.5")
        assert (zero_info.scale, half_info.scale, adapter.scale) == (0.0, 0.5, None)
        assert half_info.rank == adapter.rank and half_info.kind == "adapter"
        base_answers = answers(host, base.name)
        assert answers(host, zero_info.name) == base_answers
        # The adapter does change the answers, so scale 0's match is its doing.
        assert answers(host, adapter.name) != base_answers
    finally:
        host.end_checks()


def test_a_damaged_copy_is_refused_by_its_hash(
    tiny_artifacts: TinyArtifacts, cache: Path, tmp_path: Path
) -> None:
    """The host checks a copy against the hash it was made with, as it checks a program
    against its manifest's."""
    half = scaled_copy(tiny_artifacts.program("partial"), 0.5)
    data = bytearray(half.read_bytes())
    data[-1] ^= 1
    half.write_bytes(bytes(data))
    host = ModelHost(tiny_artifacts.foundation, log_path=tmp_path / "engine.log")
    try:
        with pytest.raises(Exception, match="is not the program lora-export wrote"):
            host.check(half)
    finally:
        host.end_checks()


def test_lora_export_scale_writes_the_same_program(
    tiny_artifacts: TinyArtifacts, cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)  # its template: a fill of seconds
    full = tiny_artifacts.adapters["full"]
    code = cli.main(
        ["--base", str(tiny_artifacts.base_dir), "--out", str(out)]
        + ["--max-context", str(MAX_CONTEXT), "--adapter", f"half={full}", "--scale", "0.5"]
    )
    assert code == 0
    entry = Manifest.read(out).programs["half"]
    assert entry.scale == 0.5 and entry.lora_b == Manifest.read(out).programs["full"].lora_b
    assert (out / "half.pte").read_bytes() == scaled_copy(
        tiny_artifacts.program("full"), 0.5
    ).read_bytes()
    assert (
        cli.main(
            [
                "--base",
                str(tiny_artifacts.base_dir),
                "--out",
                str(out),
                "--adapter",
                f"x={full}",
                "--scale",
                "nan",
            ]
        )
        == 1
    )


def test_a_scaled_copy_over_8da4w_passes_the_preflight(
    quantized: Path, cache: Path, tmp_path: Path
) -> None:
    """LoRA weights stay fp32 over a quantized foundation, so their locations and names
    are the same kind."""
    copy = scaled_copy(quantized / "full.pte", 2.0)
    host = ModelHost(quantized / "foundation.ptd", log_path=tmp_path / "engine.log")
    try:
        info = host.load(copy)
        assert info.name == "full ×2" and info.scale == 2.0 and info.quantization == "8da4w g32"
        reply = host.answer(info.name, [Message("user", PROMPTS[0])], GREEDY)
        assert reply.stats is not None and reply.stats.new_tokens > 0
    finally:
        host.end_checks()
