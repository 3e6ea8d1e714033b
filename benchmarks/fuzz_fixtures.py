"""The healthy inputs ``benchmarks/fuzz_inputs.py`` mutates: the integration tier's tiny
fixtures (a random 2-layer Llama, a PEFT adapter, their export), a GGUF of the same base,
a prompt set and a results file that ``lora-tui eval`` wrote over them. Built once into a
scratch folder (about two minutes, most of it one lowering), nothing from a hub."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROMPTS = [
    {"prompt": "What is the capital of France?", "keywords": ["Paris"], "group": "facts"},
    {"prompt": "Name a runtime.", "regex": "ExecuTorch|XNNPACK", "fact": "runtime"},
    {"prompt": "Say something.", "group": "open"},
]
EVAL_TOKENS = 16  # long enough an answer for a regex to have something to chew on


@dataclass(frozen=True)
class Fixtures:
    root: Path

    @property
    def base(self) -> Path:  # Hugging Face folder: config.json, safetensors, tokenizer
        return self.root / "base"

    @property
    def adapter(self) -> Path:  # PEFT folder: adapter_config.json, adapter_model.safetensors
        return self.root / "adapters" / "full"

    @property
    def out(self) -> Path:  # lora-export's folder: foundation.ptd, full.pte, manifest.json
        return self.root / "out"

    @property
    def bare(self) -> Path:  # the same foundation and program without manifest or tokenizer
        return self.root / "bare"

    @property
    def gguf(self) -> Path:
        return self.root / "tiny.gguf"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts.jsonl"

    @property
    def results(self) -> Path:
        return self.root / "results.jsonl"

    @property
    def done(self) -> Path:
        return self.root / ".built"


def build_fixtures(root: Path, lora_tui: Path) -> Fixtures:
    """Build what is missing under ``root`` (a finished build is reused as it is)."""
    fixtures = Fixtures(root)
    if fixtures.done.is_file():
        return fixtures
    root.mkdir(parents=True, exist_ok=True)
    _build_models(fixtures)
    fixtures.bare.mkdir(exist_ok=True)
    for name in ("foundation.ptd", "full.pte"):
        target = fixtures.bare / name
        if not target.exists():
            os.link(fixtures.out / name, target)
    fixtures.prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    fixtures.results.unlink(missing_ok=True)
    eval_command = [
        str(lora_tui),
        "eval",
        "--weights",
        str(fixtures.out / "foundation.ptd"),
        str(fixtures.out / "full.pte"),
        "--prompts",
        str(fixtures.prompts),
        "--out",
        str(fixtures.results),
        "--max-new-tokens",
        str(EVAL_TOKENS),
    ]
    subprocess.run(eval_command, check=True, cwd=root, capture_output=True, timeout=600)
    _add_a_vote(fixtures.results)
    fixtures.done.write_text("")
    return fixtures


def _add_a_vote(results: Path) -> None:
    """A blind vote on the first answer, as the app writes it: the answer names its round
    and a vote line follows, so the readers of votes have one to read."""
    answers = [json.loads(line) for line in results.read_text().splitlines()]
    answers[0]["round"] = "r1"
    vote = {"type": "vote", "round": "r1", "prompt": answers[0]["prompt"]}
    vote |= {"adapters": [answers[0]["adapter"]], "verdict": answers[0]["adapter"]}
    results.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [*answers, vote]))


def _build_models(fixtures: Fixtures) -> None:
    """In a child process, so that torch never loads in the process that starts the cases."""
    code = (
        "import sys; from pathlib import Path; "
        "from benchmarks.fuzz_fixtures import build_models; build_models(Path(sys.argv[1]))"
    )
    root_of_repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code, str(fixtures.root)], check=True, cwd=root_of_repo)


def build_models(root: Path) -> None:
    from exporter.pipeline import ExportRequest, run_export
    from tests.support.artifacts import ALL_TARGETS, MAX_CONTEXT
    from tests.support.tiny import build_adapter, build_base, build_gguf

    fixtures = Fixtures(root)
    for stale in (fixtures.base, fixtures.adapter, fixtures.out):
        shutil.rmtree(stale, ignore_errors=True)
    build_base(fixtures.base)
    build_adapter(fixtures.base, fixtures.adapter, r=8, alpha=16, targets=ALL_TARGETS, seed=1)
    request = ExportRequest(
        fixtures.base, [("full", fixtures.adapter)], fixtures.out, max_context=MAX_CONTEXT
    )
    run_export(request)
    build_gguf(fixtures.base, fixtures.gguf)
