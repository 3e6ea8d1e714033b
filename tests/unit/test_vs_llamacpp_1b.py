"""The 1B benchmark against llama.cpp: its tables hold every round to the target, what it
counts as read per token, and its table before a run has written its results file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from benchmarks import tables
from benchmarks.vs_llamacpp_1b import (
    conversation,
    foundation_read_bytes,
    read_bandwidth,
    vs_llamacpp_1b_bandwidth_table,
    vs_llamacpp_1b_history_table,
    vs_llamacpp_1b_table,
    vs_llamacpp_1b_watch_table,
)
from lora_tui.engine.chat import ChatFormat


def _report() -> dict:
    """Three rounds; 8da8w beats llama.cpp by 1.3x or more in the median but not in round 2."""
    quantizations = {"fp32": "F32", "8da8w": "Q8_0", "8da4w": "Q4_1"}
    decode: dict[str, list[float]] = {}
    history: dict[str, list[float]] = {}
    read = {}
    watched: dict[str, list[dict]] = {}
    for label, ftype in quantizations.items():
        for suffix_ours, suffix_theirs in (("", ""), (", two panes", ", two processes")):
            decode[f"lora-tui {label}{suffix_ours}"] = [14.0, 12.0, 14.0]
            decode[f"llama.cpp {ftype} + LoRA{suffix_theirs}"] = [10.0, 10.0, 10.0]
        history[f"lora-tui {label}"] = [2.0, 3.0, 2.5]
        history[f"lora-tui {label}, bare loop, largest chunks"] = [1.5, 1.6, 1.4]
        history[f"llama.cpp {ftype} + LoRA"] = [2.5, 2.5, 2.5]
        read[f"lora-tui {label}"] = {"foundation": 2_000_000_000, "lora": 0, "kv": 0}
        read[f"llama.cpp {ftype} + LoRA"] = {"foundation": 1_000_000_000, "lora": 0, "kv": 0}
        watched[f"lora-tui {label}"] = [
            {
                "minor_faults": 2,
                "major_faults": 0,
                "preempted": preempted,
                "cpu_per_wall": cpu,
                "step_ms": {"median": median, "p90": median * 1.1, "max": median * 1.5},
            }
            for preempted, cpu, median in ((100, 1.9, 24.7), (9000, 1.1, 45.3), (120, 1.9, 24.9))
        ]
    return {
        "tokens": 64,
        "prompt_tokens": 38,
        "history_tokens": 1502,
        "mean_decode_position": 70,
        "max_prefill": 128,
        "quantizations": quantizations,
        "bandwidth_gb_s": [38.0, 40.0, 39.0],
        "decode_tok_s": decode,
        "history_ttft_s": history,
        "bytes_read_per_token": read,
        "diagnostics": watched,
    }


def test_the_ratio_row_shows_every_round_and_misses_on_the_worst() -> None:
    lines = vs_llamacpp_1b_table(_report())
    text = "\n".join(lines)
    assert "40.0 GB/s (rounds: 38.0, 40.0, 39.0)" in text  # the best round is the machine's
    row = next(line for line in lines if line.startswith("| 8da8w / Q8_0, by round"))
    assert "1.40×, 1.20×, 1.40× (min **1.20×**: **missed**)" in row  # the median is 1.4x
    ours = next(line for line in lines if line.startswith("| **lora-tui 8da8w** "))
    # Median 14 tok/s (12 to 14), 2 GB a token: 28 GB/s of the best 40.
    assert "| 14.00 (12.00–14.00) | 2.000 GB | 70% |" in ours
    fp32 = next(line for line in lines if line.startswith("| fp32 / F32, by round"))
    assert "target" not in fp32 and "(min 1.20×)" in fp32  # fp32 is shown, not held to 1.3x


def test_the_bandwidth_read_before_each_answer_counts_toward_the_machines() -> None:
    report = _report()
    report["answer_bandwidth_gb_s"] = {
        "lora-tui 8da8w": [35.0, 44.0, 36.0],
        "llama.cpp Q8_0 + LoRA": [30.0, 41.0, 33.0],
    }
    lines = vs_llamacpp_1b_table(report)
    text = "\n".join(lines)
    # The best reading of the run, before an answer here, is the machine's bandwidth ...
    assert "44.0 GB/s (rounds: 38.0, 40.0, 39.0; before each answer 30.0–44.0)" in text
    ours = next(line for line in lines if line.startswith("| **lora-tui 8da8w** "))
    assert "| 2.000 GB | 64% |" in ours  # ... and each row's share is of it: 28 of 44 GB/s


def test_the_bandwidth_table_tells_a_memory_bound_row_from_a_compute_bound_one() -> None:
    report = _report()
    report["quantizations"] = {"8da8w": "Q8_0"}
    report["answers_tok_s"] = {
        "lora-tui 8da8w": [[27.0, 36.0, 31.5], [27.0, 36.0, 31.5]],  # follows the bandwidth
        "llama.cpp Q8_0 + LoRA": [[20.0, 20.0, 21.0], [21.0, 20.0, 20.0]],
    }
    report["answer_bandwidth_gb_s"] = {
        "lora-tui 8da8w": [34.0, 64.0, 49.0, 34.0, 64.0, 49.0],
        "llama.cpp Q8_0 + LoRA": [34.0, 64.0, 49.0, 34.0, 64.0, 49.0],
    }
    lines = vs_llamacpp_1b_bandwidth_table(report)
    ours = next(line for line in lines if line.startswith("| **lora-tui 8da8w** "))
    assert ours.endswith("| 6 | 27.00–36.00 | 34.0–64.0 | 1.00 |")
    theirs = next(line for line in lines if line.startswith("| llama.cpp Q8_0 + LoRA "))
    assert "| 20.00–21.00 | 34.0–64.0 |" in theirs
    assert abs(float(theirs.rstrip(" |").rsplit("| ", 1)[1])) < 0.5


def test_the_history_table_compares_time_to_first_token_round_by_round() -> None:
    lines = vs_llamacpp_1b_history_table(_report())
    assert lines[0].startswith("| time to first token, 1502-token conversation | fp32 |")
    assert "| **lora-tui** (the engine) | 2.50 (2.00–3.00) s |" in lines[2]
    assert "bare forward loop, 128-token chunks" in lines[3]
    verdict = lines[-1]
    assert verdict.startswith("| llama.cpp's time / ours, by round (target ≥ 1.0×)")
    assert "1.25×, 0.83×, 1.00× (min **0.83×**: **missed**)" in verdict


def test_the_watch_table_shows_each_round_of_each_quantization() -> None:
    lines = vs_llamacpp_1b_watch_table(_report())
    assert len(lines) == 2 + 3 * 3
    assert lines[3] == "| fp32, round 2 | 12.00 | 45.3 / 49.8 / 67.9 | 1.10 | 9,000 | 2 |"


def test_a_pending_table_says_how_to_make_it_until_its_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "RESULTS_DIR", tmp_path)
    pending = tables.TABLES["vs_llamacpp_1b"]
    (line,) = pending.render("vs_llamacpp_1b")
    assert "python -m benchmarks.vs_llamacpp_1b" in line
    assert "benchmarks/results/vs_llamacpp_1b.json" in line

    (tmp_path / "vs_llamacpp_1b.json").write_text(json.dumps(_report()))
    rendered = pending.render("vs_llamacpp_1b")
    assert rendered[-1] == "The run recorded no provenance."
    assert any("by round" in line for line in rendered)
    # A table not marked pending still fails on a missing file: a lost result is an error.
    with pytest.raises(FileNotFoundError):
        tables.TABLES["vs_llamacpp"].render("vs_llamacpp")


def test_a_step_reads_one_row_of_the_looked_up_tables_and_bf16_group_scales(
    tmp_path: Path,
) -> None:
    from executorch.exir._serialize.data_serializer import DataEntry, DataPayload
    from executorch.exir.scalar_type import ScalarType
    from executorch.exir.tensor_layout import TensorLayout
    from executorch.extension.flat_tensor.serialize.serialize import FlatTensorSerializer

    def entry(index: int, *sizes: int) -> DataEntry:
        return DataEntry(
            index, 1, TensorLayout(ScalarType.FLOAT, list(sizes), list(range(len(sizes))))
        )

    weight, scales = bytes(4096), bytes(range(256)) * 2
    digest = hashlib.sha256(weight).hexdigest()
    buffers = [bytes(100 * 8 * 4), bytes(16 * 4 * 4), weight, scales]
    named = {
        "tok_embeddings.weight": entry(0, 100, 8),  # 3,200 bytes: one row is 32
        "rope.freqs_cos": entry(1, 16, 4),  # 256 bytes: one row is 16
        digest: entry(2, 32, 32),  # a linear's weight, read whole: 4,096
        "scale_" + hashlib.sha256(scales).hexdigest(): entry(3, 128),  # 512 bytes
    }
    ptd = tmp_path / "foundation.ptd"
    payload = DataPayload(buffers=buffers, named_data=named)
    ptd.write_bytes(bytes(FlatTensorSerializer().serialize(payload)))
    assert foundation_read_bytes(ptd, "8da8w") == 32 + 16 + 4096 + 512
    assert foundation_read_bytes(ptd, "8da4w") == 32 + 16 + 4096 + 256


def test_the_bandwidth_probe_reads_a_gibibyte_and_says_gb_per_second() -> None:
    assert 0.5 < read_bandwidth(threads=2, repeats=1) < 1000


def test_the_conversation_is_as_long_as_asked_and_ends_with_a_question(tmp_path: Path) -> None:
    from tests.support.tiny import build_tokenizer  # ChatML, as SmolLM2's

    folder = tmp_path / "tokenizer"
    build_tokenizer(folder)
    first = conversation(folder, 300)
    assert first == conversation(folder, 300)  # the same every run
    roles = [m.role for m in first]
    assert roles == ["user", "assistant"] * (len(first) // 2) + ["user"]
    chat = ChatFormat.from_files(folder)
    assert len(chat.encode_chat(first)) >= 300 > len(chat.encode_chat(first[:-2]))
