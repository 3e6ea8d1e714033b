"""Standard ExecuTorch, both ways: what lora-export writes runs in ExecuTorch's own
``TextLLMRunner``, and what ExecuTorch's ``export_llm`` writes opens in lora-tui."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lora_tui.engine import GenerationSettings, ModelHost
from lora_tui.engine.types import Message
from tests.support.artifacts import TinyArtifacts
from tests.support.real_app import real_app, wait_for
from tests.support.runner import NEW_TOKENS, run_text_llm_runner, visible_ascii

PROMPTS = ["What is the capital of France?", "Tell me about ExecuTorch."]


@pytest.mark.parametrize("name", ["full", "partial", "base"])
def test_text_llm_runner_runs_every_program_like_lora_tui(
    tiny_artifacts: TinyArtifacts, name: str
) -> None:
    host = ModelHost(tiny_artifacts.foundation)
    host.load(tiny_artifacts.program(name))
    host.end_checks()
    tokenizer = host.foundation.chat.tokenizer
    settings = GenerationSettings(temperature=0.0, max_new_tokens=NEW_TOKENS)
    for text in PROMPTS:
        asked = [Message("user", text)]
        prompt = host.foundation.chat.render(asked)
        done = host.answer(name, asked, settings)
        host.clear()
        runner_text, stats = run_text_llm_runner(
            tiny_artifacts.program(name),
            tiny_artifacts.out / "tokenizer.json",
            tiny_artifacts.foundation,
            prompt,
        )
        assert stats["prompt_tokens"] == done.stats.prompt_tokens  # the same tokens went in
        ours = visible_ascii(done.text)
        assert len(ours) >= 10, done.text  # enough text for the comparison to mean something
        specials = [t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special]
        assert visible_ascii(runner_text, specials) == ours, (runner_text, done.text)


# --- what export_llm writes opens in lora-tui -----------------------------------------------


def greedy_text(host: ModelHost, name: str, text: str) -> str:
    settings = GenerationSettings(temperature=0.0, max_new_tokens=NEW_TOKENS)
    done = host.answer(name, [Message("user", text)], settings)
    host.clear([name])
    assert done.stats and done.stats.new_tokens > 0, done.error
    return done.text


def test_export_llm_program_runs_beside_lora_export_programs(
    tiny_artifacts: TinyArtifacts, export_llm_program: Path
) -> None:
    """Both exporters write the same foundation for the same base, so one .ptd serves both;
    and the same adapter computes the same text through either."""
    host = ModelHost(tiny_artifacts.foundation)
    host.load(tiny_artifacts.program("full"))
    info = host.load(export_llm_program)
    host.end_checks()
    assert (info.kind, info.rank) == ("program", None)  # the manifest does not know it
    for text in PROMPTS:
        assert greedy_text(host, "llm_full", text) == greedy_text(host, "full", text)


def test_bench_opens_export_llm_artifacts_with_a_tokenizer_folder(
    tiny_artifacts: TinyArtifacts, export_llm_program: Path
) -> None:
    weights = export_llm_program.parent / "foundation.ptd"  # export_llm's own, no manifest
    programs = [str(export_llm_program), str(tiny_artifacts.program("full"))]
    done = subprocess.run(
        [sys.executable, "-m", "lora_tui.cli", "bench", "--weights", str(weights), *programs]
        + ["--tokenizer", str(tiny_artifacts.base_dir), "--max-new-tokens", "6", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["adapters"]
    assert [row["name"] for row in rows] == ["llm_full", "full"]
    assert all(row["new_tokens"] == 6 for row in rows)
    assert rows[1]["true_increment_mib"] < rows[0]["true_increment_mib"]  # shared foundation


async def test_app_answers_from_export_llm_and_lora_export_programs(
    tiny_artifacts: TinyArtifacts, export_llm_program: Path, tmp_path: Path
) -> None:
    programs = [tiny_artifacts.program("full"), export_llm_program]
    app = real_app(tiny_artifacts.foundation, programs, tmp_path)
    async with app.run_test(size=(120, 34)) as pilot:
        await wait_for(pilot, lambda: all(p.state == "ready" for p in app.main.panes.values()))
        app.session.settings = GenerationSettings(temperature=0.0, max_new_tokens=8)
        app.main.query_one("#prompt").value = PROMPTS[0]
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: all(p.conversation.last_reply for p in app.main.panes.values())
        )
        panes = app.main.panes
        assert set(panes) == {"full", "llm_full"}
        assert panes["llm_full"].conversation.last_reply == panes["full"].conversation.last_reply
        assert panes["llm_full"].border_subtitle == "rank unknown (no manifest)"


def test_lora_export_runs_the_operators_export_llm_runs(
    tiny_artifacts: TinyArtifacts, export_llm_program: Path
) -> None:
    """The same adapter runs the same operators through either exporter, inside XNNPACK
    and outside it. (lora-export once kept the transposes ExecuTorch's attention, KV cache
    and SDPA undo, which export_llm removes: ten a layer, four of them over the whole KV
    cache, a fifth of an 8da4w decode step.) lora-export cuts the graph into fewer
    delegate calls."""
    from benchmarks.program_report import report

    ours = report(tiny_artifacts.program("full"), None)
    theirs = report(export_llm_program, None)
    assert "XNNStaticTranspose" not in ours["xnnpack_operators"]
    assert ours["xnnpack_operators"] == theirs["xnnpack_operators"]
    assert ours["kernels"] == theirs["kernels"]
    assert ours["delegate_calls"] <= theirs["delegate_calls"]


def test_sorting_the_graph_once_gives_the_same_program_as_sorting_after_every_cut(
    tiny_artifacts: TinyArtifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lora-export sorts the graph once after XNNPACK's partitions are cut out, where
    ExecuTorch sorts it after each cut (a quarter of a lowering). Lowered ExecuTorch's way,
    the base gives the same logits, bit for bit."""
    import contextlib

    from exporter.pipeline import ExportRequest, run_export
    from tests.support.artifacts import MAX_CONTEXT
    from tests.support.programs import program_greedy

    monkeypatch.setattr("exporter.lower._one_sort_per_graph", contextlib.nullcontext)
    out = tmp_path / "sorted-every-cut"
    run_export(
        ExportRequest(tiny_artifacts.base_dir, [], out, base_program=True, max_context=MAX_CONTEXT)
    )
    prompt = [1, 5, 9, 14, 3, 7]
    theirs = program_greedy(out / "base.pte", out / "foundation.ptd", prompt, 6)
    ours = program_greedy(tiny_artifacts.program("base"), tiny_artifacts.foundation, prompt, 6)
    assert ours[0] == theirs[0]
    assert all(bool((a == b).all()) for a, b in zip(ours[1], theirs[1], strict=True))


def test_decomposing_once_gives_the_same_files(
    tiny_artifacts: TinyArtifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lora-export functionalises and decomposes the graph in one retrace, where ExecuTorch
    retraces it twice. Lowered ExecuTorch's way, an adapter's program and the foundation
    are the same bytes. (tests/integration/test_quantized.py compares the 8da4w ones.)"""
    import contextlib

    from lora_tui.format import FP32, sha256_file
    from tests.support.artifacts import export_quantized

    monkeypatch.setattr("exporter.lower._decompose_once", contextlib.nullcontext)
    out = export_quantized(tiny_artifacts, tmp_path / "decomposed-twice", FP32)
    for name in ("full.pte", "foundation.ptd"):
        assert sha256_file(out / name) == sha256_file(tiny_artifacts.out / name), name
