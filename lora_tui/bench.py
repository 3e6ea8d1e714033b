"""``lora-tui bench``: load each program in turn over one foundation, run one prompt on each,
and print what every load cost and how fast each adapter answered."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lora_tui.common.native_output import native_output_to, terminal_stream
from lora_tui.engine.types import AdapterInfo, GenerationSettings, ReplyStats
from lora_tui.format import ArtifactError

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


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def run_bench(
    weights: Path,
    programs: list[Path],
    prompt: str,
    max_new_tokens: int,
    share: bool,
    tokenizer: Path | None = None,
    threads: int | None = None,
) -> tuple[object, list[BenchRow]]:
    from lora_tui.engine.host import ModelHost

    host = ModelHost(weights, tokenizer, share=share, threads=threads)
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
        name, _ = host.foundation.entry_for(program)
        copies = sum(1 for loaded in host.infos.values() if Path(loaded.path) == program)
        info = host.load(program, f"{name}#{copies + 1}" if copies else None)
        rows.append(BenchRow(info, host.answer(info.name, prompt, settings).stats))
        host.clear([info.name])
    return host, rows


def bench_main(args) -> int:
    console = Console(file=terminal_stream(1), highlight=False)
    errors = Console(file=terminal_stream(2), highlight=False)
    log = Path(args.log) if args.log else Path("/dev/null")
    try:
        with native_output_to(log):
            host, rows = run_bench(
                Path(args.weights),
                [Path(p) for p in args.programs],
                args.prompt,
                args.max_new_tokens,
                not args.no_share,
                Path(args.tokenizer) if args.tokenizer else None,
                args.threads,
            )
    except ArtifactError as err:
        errors.print(f"[red]lora-tui bench: error:[/] {err}", soft_wrap=True)
        return 1
    measured = [row for row in rows if isinstance(row, BenchRow)]
    refused = [row for row in rows if isinstance(row, Refused)]
    status = 1 if refused else 0
    if args.json:
        report = {
            "sharing": host.sharing.enabled,
            "sharing_detail": host.sharing.detail,
            "threads": host.threads,
            "torch_threads": _torch_threads(),
            "baseline_rss_mib": round(host.baseline_rss_mib, 1),
            "adapters": [row.as_json() for row in rows],
        }
        console.print_json(json.dumps(report))
        return status
    for row in refused:
        errors.print(f"[red]lora-tui bench: error:[/] {row.error}", soft_wrap=True)
    if not measured:
        return status
    table = Table(
        title=f"lora-tui bench — weight sharing {'on' if host.sharing.enabled else 'off'}"
        f" ({host.sharing.detail}); {host.threads} XNNPACK threads;"
        f" baseline RSS {host.baseline_rss_mib:.0f} MiB",
        title_justify="left",
    )
    columns = ("adapter", "RSS after load", "+RSS", "+PSS (true)", "check", "load", "TTFT")
    for column in (*columns, "decode"):
        table.add_column(column, justify="left" if column == "adapter" else "right")
    for row in measured:
        info, stats = row.info, row.stats
        true = info.true_increment_mib
        table.add_row(
            info.name,
            f"{info.rss_after_mib:.0f} MiB",
            f"{info.increment_mib:+.0f} MiB",
            f"{true:+.0f} MiB" if true is not None else "—",
            f"{info.check_s:.2f} s",
            f"{info.load_s:.2f} s",
            f"{stats.ttft_s:.2f} s" if stats else "—",
            f"{stats.decode_tok_s:.1f} tok/s" if stats else "—",
        )
    console.print(table)
    return status
