"""``lora-tui bench``: the measurements of ``lora_tui.judging.measure`` as a table or one
JSON object."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from lora_tui.cli.options import BenchOptions
from lora_tui.common.console import print_error
from lora_tui.common.literal import literal
from lora_tui.common.native_output import native_output_to, terminal_stream
from lora_tui.format import ArtifactError
from lora_tui.judging.measure import BenchRow, Refused, run_bench

if TYPE_CHECKING:
    from lora_tui.engine.foundations import FoundationPrograms
    from lora_tui.engine.host import ModelHost


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def bench_main(options: BenchOptions) -> int:
    console = Console(file=terminal_stream(1), highlight=False)
    errors = Console(file=terminal_stream(2), highlight=False)
    programs, runtime = options.programs, options.runtime
    try:
        with native_output_to(runtime.log or Path("/dev/null")):
            from lora_tui.engine.host import open_hosts

            hosts = open_hosts(
                programs.foundations, programs.tokenizer, runtime.share, runtime.threads
            )
            rows = [
                row
                for group, host in hosts
                for row in run_bench(
                    host, group.programs, options.prompt, options.max_new_tokens, group.label
                )
            ]
    except ArtifactError as err:
        print_error(errors, "lora-tui bench", err)
        return 1
    measured = [row for row in rows if isinstance(row, BenchRow)]
    refused = [row for row in rows if isinstance(row, Refused)]
    status = 1 if refused else 0
    if options.json:
        console.print_json(data=_report(hosts, rows), ensure_ascii=True)  # no raw controls
        return status
    for row in refused:
        print_error(errors, "lora-tui bench", row.error)
    if measured:
        console.print(_table(hosts[0][1], measured))
    return status


def _report(hosts: list[tuple[FoundationPrograms, ModelHost]], rows: list) -> dict:
    host = hosts[0][1]  # sharing, threads and the baseline are the same for every host
    return {
        "sharing": host.sharing.enabled,
        "sharing_detail": host.sharing.detail,
        "threads": host.threads,
        "torch_threads": _torch_threads(),
        "baseline_rss_mib": round(host.baseline_rss_mib, 1),
        "foundations": [
            {
                "weights": str(g.weights),
                "label": g.label,
                "quantization": h.foundation.quantization,
            }
            for g, h in hosts
        ],
        "adapters": [row.as_json() for row in rows],
    }


def _table(host: ModelHost, measured: list[BenchRow]) -> Table:
    table = Table(
        title=literal(
            f"lora-tui bench — weight sharing {'on' if host.sharing.enabled else 'off'}"
            f" ({host.sharing.detail}); {host.threads} XNNPACK threads;"
            f" baseline RSS {host.baseline_rss_mib:.0f} MiB"
        ),
        title_justify="left",
    )
    columns = ("adapter", "RSS after load", "+RSS", "+PSS (true)", "check", "load", "TTFT")
    for column in (*columns, "decode"):
        table.add_column(column, justify="left" if column == "adapter" else "right")
    for row in measured:
        info, stats = row.info, row.stats
        true = info.true_increment_mib
        table.add_row(
            literal(info.name),  # a file's name: "support[lr=1e-4]" is text, not markup
            f"{info.rss_after_mib:.0f} MiB",
            f"{info.increment_mib:+.0f} MiB",
            f"{true:+.0f} MiB" if true is not None else "—",
            f"{info.check_s:.2f} s",
            f"{info.load_s:.2f} s",
            f"{stats.ttft_s:.2f} s" if stats else "—",
            f"{stats.decode_tok_s:.1f} tok/s" if stats else "—",
        )
    return table
