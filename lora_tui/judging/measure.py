"""What ``lora-tui bench`` measures: each program loaded in turn over its foundation, one
prompt run on each, what every load cost and how fast each adapter answered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lora_tui.engine.foundations import with_label
from lora_tui.engine.types import AdapterInfo, GenerationSettings, Message, ReplyStats
from lora_tui.format import ArtifactError

if TYPE_CHECKING:  # the CLI imports this module before it may import torch
    from lora_tui.engine.host import ModelHost

DEFAULT_PROMPT = "Explain in two sentences what a LoRA adapter is."


@dataclass
class BenchRow:
    info: AdapterInfo
    stats: ReplyStats | None

    def as_json(self) -> dict[str, object]:
        info, stats = self.info, self.stats
        return {
            "name": info.name,
            "quantization": info.quantization,
            "scale": info.scale,
            "foundation": info.foundation,
            "rss_after_load_mib": round(info.rss_after_mib, 1),
            "increment_mib": round(info.increment_mib, 1),
            # What the program really added: shared pages split among their mappings.
            "true_increment_mib": _rounded(info.true_increment_mib),
            "check_s": round(info.check_s, 3),
            "load_s": round(info.load_s, 3),
            "ttft_s": round(stats.ttft_s, 3) if stats else None,
            "decode_tok_s": round(stats.decode_tok_s, 2) if stats else None,
            "new_tokens": stats.new_tokens if stats else 0,
            "pss_mib": _rounded(info.pss_after_mib),
            "uss_mib": _rounded(info.uss_after_mib),
            "anon_increment_mib": _rounded(info.anon_increment_mib),
            "adapter_weights_mib": _rounded(info.breakdown.adapter_weights_mib),
            "kv_cache_mib": _rounded(info.breakdown.kv_cache_mib),
            "program_mib": _rounded(info.breakdown.program_mib),
            "rank": info.rank,
            "target_modules": list(info.target_modules) if info.target_modules else None,
        }


@dataclass
class Refused:
    """A program that failed its check: one line says why."""

    path: Path
    error: str

    def as_json(self) -> dict[str, object]:
        return {"name": self.path.stem, "path": str(self.path), "error": self.error}


def _rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def run_bench(
    host: ModelHost,
    programs: Sequence[Path],
    prompt: str,
    max_new_tokens: int,
    label: str = "",
) -> list[BenchRow | Refused]:
    """Each program over ``host``'s foundation, named with ``label`` when several
    foundations are measured in one run."""
    settings = GenerationSettings(temperature=0.0, max_new_tokens=max_new_tokens)
    # Every program is tried in a child process first; then the child goes, so it neither
    # holds memory nor competes for the cores while the others are measured. A program
    # that fails is an error row; the others are measured as if it were not there.
    refused: dict[Path, str] = {}
    for program in programs:
        try:
            host.check(program)
        except ArtifactError as err:
            refused[program] = str(err)
    host.end_checks()
    rows: list[BenchRow | Refused] = []
    for program in programs:
        if program in refused:
            rows.append(Refused(program, refused[program]))
            continue
        # The same file may be listed twice, as the original demo loads a, b, a.
        name = with_label(host.foundation.entry_for(program)[0], label)
        copies = sum(1 for loaded in host.infos.values() if Path(loaded.path) == program)
        info = host.load(program, f"{name}#{copies + 1}" if copies else name)
        done = host.answer(info.name, [Message("user", prompt)], settings)
        rows.append(BenchRow(info, done.stats))
        host.clear([info.name])
    return rows
