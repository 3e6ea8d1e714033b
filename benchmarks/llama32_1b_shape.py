"""lora-export and lora-tui at 1B scale: a random-weight model of Llama-3.2-1B-Instruct's
exact shape, with r=16 adapters on all seven projections.

    .venv/bin/python -m benchmarks.llama32_1b_shape [--work DIR]

Builds the base (bf16 safetensors, as Meta ships it; about 2.5 GB) and two adapters once in
WORK (default ~/.cache/lora-tui/bench-1b), then, each in its own process:

1. ``lora-export`` of the base and the first adapter: wall time and the exporter's peak RSS;
2. ``lora-export`` adding the second adapter to the same folder (a template fill);
3. ``lora-tui bench`` on both programs: true (PSS) added cost per adapter and decode tok/s;
4. the first export again (base, first adapter, an empty folder) at fp32, 8da8w and 8da4w,
   of the same shape with SmolLM2's 49,152-token vocabulary (issue 45 measured that one):
   wall time, the template's lowering and peak RSS of each.

Figures go to ``benchmarks/results/llama32_1b_shape.json``.

Run it alone: a test run or another export on the same cores changes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from benchmarks import markdown
from benchmarks.memory import bench
from benchmarks.record import write_results
from lora_tui.format import FOUNDATION_FILE
from tests.support.tiny import FAMILIES, TEMPLATES, build_tokenizer  # the Llama 3 tokenizer

# Llama-3.2-1B-Instruct's config.json, as on the Hub.
LLAMA_32_1B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "torch_dtype": "bfloat16",
}
TARGETS = {
    "q_proj": ("self_attn", 2048, 2048),
    "k_proj": ("self_attn", 2048, 512),
    "v_proj": ("self_attn", 2048, 512),
    "o_proj": ("self_attn", 2048, 2048),
    "gate_proj": ("mlp", 2048, 8192),
    "up_proj": ("mlp", 2048, 8192),
    "down_proj": ("mlp", 8192, 2048),
}
RANK = 16
MAX_CONTEXT = 512
FIRST_EXPORT_VOCAB = 49152  # SmolLM2's vocabulary: the base issue 45 timed each quantization on
QUANTIZATIONS = {"fp32": "none", "8da8w": "8da8w", "8da4w": "8da4w"}  # label -> --quantize


def build_base(directory: Path, vocab: int = LLAMA_32_1B["vocab_size"]) -> Path:
    """Random bf16 weights of the exact shape (with ``vocab`` token embeddings), written
    one tensor group at a time."""
    if (directory / "model.safetensors").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    family = FAMILIES["llama3"]
    build_tokenizer(directory, special_tokens=family.special_tokens)
    template = (TEMPLATES / "llama3.jinja").read_text()
    (directory / "tokenizer_config.json").write_text(
        json.dumps({**family.tokenizer_config, "chat_template": template})
    )
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    stops = [tokenizer.token_to_id(t) for t in family.stop_tokens]
    config = {**LLAMA_32_1B, "vocab_size": vocab, "bos_token_id": 0, "eos_token_id": stops}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "generation_config.json").write_text(json.dumps({"eos_token_id": stops}))

    save_file(random_weights(config), directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def random_weights(config: dict) -> dict[str, torch.Tensor]:
    """Seeded random bf16 weights for a Llama ``config`` of this shape (its vocabulary may
    differ): norms at one, the rest N(0, 0.02), which keeps activations in range."""
    generator = torch.Generator().manual_seed(0)

    def normal(*shape: int, std: float = 0.02) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * std).to(torch.bfloat16)

    dim, vocab = config["hidden_size"], config["vocab_size"]
    weights = {
        "model.embed_tokens.weight": normal(vocab, dim),
        "model.norm.weight": torch.ones(dim, dtype=torch.bfloat16),
    }
    for layer in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{layer}."
        weights[prefix + "input_layernorm.weight"] = torch.ones(dim, dtype=torch.bfloat16)
        weights[prefix + "post_attention_layernorm.weight"] = torch.ones(dim, dtype=torch.bfloat16)
        for projection, (block, inputs, outputs) in TARGETS.items():
            weights[f"{prefix}{block}.{projection}.weight"] = normal(outputs, inputs)
    return weights


def build_adapter(directory: Path, seed: int) -> Path:
    """A PEFT adapter file written directly: r=16, alpha 32, all seven projections."""
    if (directory / "adapter_model.safetensors").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for layer in range(16):
        for projection, (block, inputs, outputs) in TARGETS.items():
            key = f"base_model.model.model.layers.{layer}.{block}.{projection}"
            weights[f"{key}.lora_A.weight"] = torch.randn(RANK, inputs, generator=generator) * 0.01
            weights[f"{key}.lora_B.weight"] = torch.randn(outputs, RANK, generator=generator) * 0.01
    save_file(weights, directory / "adapter_model.safetensors")
    config = {
        "peft_type": "LORA",
        "r": RANK,
        "lora_alpha": 32,
        "target_modules": list(TARGETS),
        "base_model_name_or_path": "unsloth/Llama-3.2-1B-Instruct-bnb-4bit",
        "task_type": "CAUSAL_LM",
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return directory


# Runs a command and prints its peak RSS in KiB: ru_maxrss of a process's children is the
# largest of them, so a fresh parent per command gives that command's own peak.
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


@dataclass(frozen=True)
class Export:
    seconds: float  # wall time of the lora-export process
    peak_gib: float  # its peak RSS
    phases: dict[str, float]  # the seconds of each phase, as lora-export prints them


def run_export(
    base: Path, adapter: Path, out: Path, quantize: str = "none", max_context: int = MAX_CONTEXT
) -> Export:
    """One lora-export process: its wall time, peak RSS and phases."""
    command = [
        str(Path(sys.executable).parent / "lora-export"),
        "--base",
        str(base),
        "--adapter",
        f"{adapter.name}={adapter}",
        "--out",
        str(out),
        "--max-context",
        str(max_context),
        "--quantize",
        quantize,
    ]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},  # its summary's phase lines, each on one line
    )
    if done.returncode != 0:  # what lora-export said, not only that it failed
        raise SystemExit(f"lora-export failed ({done.returncode}): {done.stderr[-2000:]}")
    seconds = time.perf_counter() - started
    phases = {m[1]: float(m[2]) for m in re.finditer(r"^(.+): ([0-9.]+) s$", done.stderr, re.M)}
    return Export(seconds, int(done.stdout.split()[-1]) / 2**20, phases)


def first_exports(base: Path, adapter: Path, work: Path) -> dict[str, dict[str, float | None]]:
    """A first export (foundation, template, one program, an empty folder) of ``base`` at
    each quantization: its wall time, its template's lowering and its peak RSS."""
    runs = {}
    for label, quantize in QUANTIZATIONS.items():
        out = work / f"first-{label}"
        shutil.rmtree(out, ignore_errors=True)
        export = run_export(base, adapter, out, quantize)
        template = next(
            (s for p, s in export.phases.items() if p.startswith("export template")), None
        )
        runs[label] = {
            "total_s": round(export.seconds, 1),
            "template_s": template,
            "peak_gib": round(export.peak_gib, 2),
            "foundation_gb": round((out / FOUNDATION_FILE).stat().st_size / 1e9, 2),
        }
        print(label, runs[label], flush=True)
        shutil.rmtree(out)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache/lora-tui/bench-1b")
    args = parser.parse_args()
    work: Path = args.work
    base = build_base(work / "base")
    first = build_adapter(work / "a", seed=1)
    second = build_adapter(work / "b", seed=2)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)

    exported = run_export(base, first, out)
    added = run_export(base, second, out)
    programs = [out / "a.pte", out / "b.pte"]
    measured = bench(out / FOUNDATION_FILE, programs, options=["--max-new-tokens", "32"])
    small_vocab = build_base(work / f"base-{FIRST_EXPORT_VOCAB}", vocab=FIRST_EXPORT_VOCAB)
    report = {
        "first_export_s": round(exported.seconds, 1),
        "first_export_peak_gib": round(exported.peak_gib, 2),
        "add_adapter_s": round(added.seconds, 1),
        "add_adapter_peak_gib": round(added.peak_gib, 2),
        "foundation_gb": round((out / FOUNDATION_FILE).stat().st_size / 1e9, 2),
        "program_mb": round((out / "a.pte").stat().st_size / 1e6, 1),
        "sharing": measured["sharing_detail"],
        "adapters": measured["adapters"],
        "first_exports": {
            "vocab_size": FIRST_EXPORT_VOCAB,
            "runs": first_exports(small_vocab, first, work),
        },
    }
    print(json.dumps(report, indent=2))
    write_results("llama32_1b_shape", report)


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def llama32_1b_shape_table(report: dict) -> list[str]:
    first, second = report["adapters"]
    budget = 1.5 * (second["adapter_weights_mib"] + second["kv_cache_mib"])
    rows = [
        ("first export (foundation + template + `a.pte`)", f"{report['first_export_s']} s", ""),
        (
            "exporter's peak RSS (`ru_maxrss` of the `lora-export` process)",
            f"**{report['first_export_peak_gib']} GiB**",
            "≤ 12 GiB",
        ),
        (
            "adding the second adapter (`lora-export` again, a template fill)",
            f"**{report['add_adapter_s']} s** (peak RSS {report['add_adapter_peak_gib']} GiB)",
            "≤ 60 s",
        ),
        (
            "`foundation.ptd` / each `.pte`",
            f"{report['foundation_gb']} GB / {report['program_mb']} MB",
            "",
        ),
        (
            "first program loaded (`lora-tui bench`)",
            f"+{first['increment_mib']:.0f} MiB RSS, +{first['true_increment_mib']:.0f} MiB PSS",
            "",
        ),
        (
            "**second program: true (PSS) added cost**",
            f"**+{second['true_increment_mib']:.1f} MiB** (RSS +{second['increment_mib']:.0f} MiB)",
            f"≤ 1.5 × (LoRA {second['adapter_weights_mib']:.1f} + KV {second['kv_cache_mib']:.1f})"
            f" = {budget:.1f} MiB",
        ),
        (
            "pre-flight / load of the second program",
            f"{second['check_s']:.1f} s / {second['load_s']:.1f} s",
            "",
        ),
        (
            "decode, 32 new tokens",
            " and ".join(f"{a['decode_tok_s']:.2f}" for a in report["adapters"]) + " tok/s",
            "",
        ),
        (
            "time to first token",
            " and ".join(f"{a['ttft_s']:.2f} s" for a in report["adapters"]),
            "",
        ),
    ]
    return markdown.head(["", "measured", "target"]) + [markdown.row(list(row)) for row in rows]


def first_exports_table(report: dict) -> list[str]:
    """Each quantization's first export of the 49,152-token base (``first_exports``)."""
    head = markdown.head(
        ["", "first export", "of which the template", "peak RSS", "foundation", "target"]
    )
    first = report.get("first_exports")
    if first is None:  # a results file from before this part of the benchmark
        return [*head, markdown.row(["not measured in this run", "", "", "", "", ""])]
    rows = []
    for label, run in first["runs"].items():
        template = "—" if run["template_s"] is None else f"{run['template_s']} s"
        target = "" if label == "fp32" else "≤ 240 s, ≤ 12 GiB"
        cells = [label, f"**{run['total_s']} s**", template, f"{run['peak_gib']} GiB"]
        rows.append(markdown.row([*cells, f"{run['foundation_gb']} GB", target]))
    return [*head, *rows]


if __name__ == "__main__":
    main()
