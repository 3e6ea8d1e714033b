"""Export the tiny base and an adapter with ExecuTorch's own ``export_llm``, as its users do.

``export_llama(LlmConfig)`` is what ``python -m executorch.extension.llm.export.export_llm
--config cfg.yaml`` calls once hydra has merged the YAML; it runs in a child process here,
so hydra writes no ``outputs/`` folder and the export's memory goes when it ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from exporter.base import BaseModel, load_base
from lora_tui.format import FOUNDATION_FILE, FP32, Quantization

_EXPORT = """
import json, sys
from omegaconf import OmegaConf
from executorch.examples.models.llama.export_llama_lib import export_llama
from executorch.extension.llm.export.config.llm_config import LlmConfig

config = OmegaConf.merge(OmegaConf.structured(LlmConfig), json.load(open(sys.argv[1])))
export_llama(OmegaConf.to_object(config))
"""


def export_with_export_llm(
    base_dir: Path,
    adapter_dir: Path,
    out: Path,
    name: str,
    max_context: int,
    quantization: Quantization = FP32,
) -> Path:
    """Write ``out/NAME.pte`` and ``out/foundation.ptd``; returns the program's path.
    ``quantization`` 8da4w is the LoRA demo's ``export_lora.sh -q``: int4 linears in groups,
    int8 dynamic activations, int8 embeddings per row."""
    out.mkdir(parents=True, exist_ok=True)
    base = load_base(base_dir)  # Hugging Face names -> the Meta names export_llm reads
    # export_llm takes a checkpoint whose path has "8da4w" or "int8" in it for one already
    # quantized (examples/models/llama/model.py), so it is written where no name says so.
    with tempfile.TemporaryDirectory(prefix="export_llm-") as scratch:
        checkpoint = Path(scratch) / "checkpoint.pth"
        torch.save(base.weights, checkpoint)
        config = _config(base, checkpoint, adapter_dir, out, name, max_context, quantization)
        (out / "llm_config.json").write_text(json.dumps(config))
        done = subprocess.run(
            [sys.executable, "-c", _EXPORT, str(out / "llm_config.json")],
            cwd=out,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    program = out / f"{name}.pte"
    # export_llm logs a failed write instead of raising, so the files are checked too.
    if done.returncode != 0 or not program.is_file() or not (out / FOUNDATION_FILE).is_file():
        raise RuntimeError(f"export_llm failed ({done.returncode}): {done.stderr[-4000:]}")
    return program


def _config(
    base: BaseModel,
    checkpoint: Path,
    adapter_dir: Path,
    out: Path,
    name: str,
    max_context: int,
    quantization: Quantization,
) -> dict:
    """export_llm's config for this export, with the params file it names written into
    ``out``."""
    shape = base.shape
    params = {
        "dim": shape.dim,
        "n_layers": shape.n_layers,
        "n_heads": shape.n_heads,
        "n_kv_heads": shape.n_kv_heads,
        "head_dim": shape.head_dim,
        "hidden_dim": shape.hidden_dim,
        "norm_eps": shape.norm_eps,
        "rope_theta": shape.rope_theta,
        "vocab_size": shape.vocab_size,
        "use_hf_rope": True,  # Hugging Face q/k layout
    }
    (out / "params.json").write_text(json.dumps(params))
    metadata = {"get_bos_id": base.tokenizer.bos_id, "get_eos_ids": base.tokenizer.stop_ids}
    config = {
        "base": {
            "model_class": "llama3",
            "checkpoint": str(checkpoint),
            "params": str(out / "params.json"),
            "tokenizer_path": str(base.source / "tokenizer.json"),
            "metadata": json.dumps(metadata),
            "lora_config": {
                "adapter_checkpoint": str(adapter_dir / "adapter_model.safetensors"),
                "adapter_config": str(adapter_dir / "adapter_config.json"),
            },
        },
        "model": {
            "use_kv_cache": True,
            "use_sdpa_with_kv_cache": True,
            "enable_dynamic_shape": True,
            "dtype_override": "fp32",
        },
        "backend": {"xnnpack": {"enabled": True, "extended_ops": True}},
        "quantization": _quantization(quantization),
        "export": {
            "output_dir": str(out),
            "output_name": name,
            "foundation_weights_file": FOUNDATION_FILE,
            "max_seq_length": max_context,
            "max_context_length": max_context,
        },
    }
    return config


def _quantization(quantization: Quantization) -> dict[str, object]:
    if quantization == FP32:
        return {}
    return {
        "qmode": quantization.mode,
        "group_size": quantization.group_size,
        "embedding_quantize": "8,0",
    }
