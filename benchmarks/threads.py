"""Thread settings against each other: decode and prefill through lora-tui's engine.

    .venv/bin/python -m benchmarks.threads [--quantize none,8da4w] [--rounds 3] [--tokens 64]

On the demo's caches (``lora-tui demo`` and ``lora-tui demo --quantize 8da4w`` build them),
one adapter program (``nobel.pte``) answers a fixed prompt greedily through ``ModelHost``,
the path the app, ``bench`` and ``eval`` take. Each setting runs in a fresh process, the
settings take turns round after round (so a slow spell of the machine hits them alike), and
the median over rounds is shown with its ratio to the engine's old setting:

- ``before``: what the engine did until now, libtorch's OpenMP pool at a thread per core
  beside XNNPACK's pool of a thread per core;
- ``OMP_NUM_THREADS=1``: OpenMP held to one thread from the environment, before torch
  loads; the engine's default now (the CLI and the app's worker set it);
- ``set_num_threads(1)``: OpenMP held to one thread at run time instead, what a script
  could do after importing torch;
- ``--threads 1``: OMP_NUM_THREADS=1 and XNNPACK one thread too, what each of two
  programs running at once would get.

Run it alone: anything else on the cores moves the figures more than the settings do. The
figures go to ``benchmarks/results/threads.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks import markdown
from benchmarks.record import write_results

PROMPT = "Tell me a story about a robot."


@dataclasses.dataclass(frozen=True)
class Setting:
    label: str
    threads: int | None = None  # --threads: XNNPACK's pool; None = every core
    omp_env: bool = False  # OMP_NUM_THREADS=1 in the environment
    set_num_threads: bool = False  # torch.set_num_threads(1) once torch is loaded


SETTINGS = [
    Setting("before"),
    Setting("OMP_NUM_THREADS=1", omp_env=True),
    Setting("set_num_threads(1)", set_num_threads=True),
    Setting("--threads 1", threads=1, omp_env=True),
]


def child(weights: str, program: str, setting: Setting, tokens: int, replies: int) -> dict:
    """One setting in this fresh process: the median of ``replies`` answers after a warm-up."""
    import torch

    from lora_tui.common.native_output import native_output_to
    from lora_tui.engine import GenerationSettings, Message, ModelHost

    if setting.set_num_threads:
        torch.set_num_threads(1)
    with native_output_to(Path(os.devnull)):
        host = ModelHost(Path(weights), threads=setting.threads)
        name = host.load(Path(program)).name
        host.end_checks()
    session = host.sessions[name]
    session.chat = dataclasses.replace(session.chat, stop_ids=frozenset())  # exactly N tokens
    settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)
    decode, ttft, prompt_tokens = [], [], 0
    for _ in range(replies + 1):  # the first warms the caches and is dropped
        host.clear([name])
        stats = host.answer(name, [Message("user", PROMPT)], settings).stats
        assert stats is not None and stats.new_tokens == tokens, stats
        decode.append(stats.decode_tok_s)
        ttft.append(stats.ttft_s)
        prompt_tokens = stats.prompt_tokens
    return {
        "decode_tok_s": statistics.median(decode[1:]),
        "ttft_s": statistics.median(ttft[1:]),
        "prompt_tokens": prompt_tokens,
        "torch_threads": torch.get_num_threads(),
    }


def run_child(weights: Path, program: Path, setting: Setting, tokens: int, replies: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if setting.omp_env:
        env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.threads",
            "--child",
            json.dumps(dataclasses.asdict(setting)),
        ]
        + [str(weights), str(program), str(tokens), str(replies)],
        cwd=Path(__file__).resolve().parents[1],  # where "benchmarks" is a package
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"{setting.label}: failed\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_folder(folder: Path, rounds: int, tokens: int, replies: int) -> tuple[str, dict]:
    """Every setting on the folder's nobel.pte, interleaved round by round; the medians."""
    from lora_tui.demo.build import DemoBuild

    build = DemoBuild(folder, None)
    mode = build.manifest.quantized.label
    program = build.folder / "nobel.pte"
    runs: dict[str, list[dict]] = {s.label: [] for s in SETTINGS}
    for round_number in range(rounds):
        for setting in SETTINGS:
            result = run_child(build.weights, program, setting, tokens, replies)
            runs[setting.label].append(result)
            print(
                f"{mode} round {round_number + 1} {setting.label:<20}"
                f" decode {result['decode_tok_s']:6.1f} tok/s  TTFT {result['ttft_s']:.3f} s",
                flush=True,
            )
    table = {}
    for label, results in runs.items():
        table[label] = {
            "decode_tok_s": round(statistics.median(r["decode_tok_s"] for r in results), 1),
            "ttft_s": round(statistics.median(r["ttft_s"] for r in results), 4),
            "prompt_tokens": results[0]["prompt_tokens"],
        }
    before = table["before"]["decode_tok_s"]
    for row in table.values():
        row["decode_vs_before"] = round(row["decode_tok_s"] / before, 3)
    return mode, table


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        fields = json.loads(sys.argv[2])
        weights, program, tokens, replies = sys.argv[3:7]
        print(json.dumps(child(weights, program, Setting(**fields), int(tokens), int(replies))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantize", default="none,8da4w")
    parser.add_argument(
        "--folder",
        type=Path,
        action="append",
        help="a lora-export folder with nobel.pte, instead of the demo's caches (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replies", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()

    from lora_tui.demo.build import demo_folder, demo_quantization
    from lora_tui.engine.threads import available_cores

    report: dict[str, object] = {
        "cores": available_cores(),
        "tokens": args.tokens,
        "rounds": args.rounds,
        "prompt": PROMPT,
        "programs": {},
    }
    folders = args.folder or [
        demo_folder(demo_quantization(mode)) for mode in args.quantize.split(",")
    ]
    for folder in folders:
        if not (folder / "nobel.pte").is_file():
            print(f"{folder}: no nobel.pte (lora-tui demo [--quantize MODE] builds one)")
            continue
        label, table = measure_folder(folder, args.rounds, args.tokens, args.replies)
        report["programs"][f"nobel {label}"] = table  # type: ignore[index]
    print(json.dumps(report, indent=2))
    write_results("threads", report)
    return 0


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


THREAD_SETTINGS = {
    "before": "before: OpenMP and XNNPACK a thread per core",
    "OMP_NUM_THREADS=1": "**`OMP_NUM_THREADS=1`, XNNPACK every core (the default now)**",
    "set_num_threads(1)": "`torch.set_num_threads(1)` after torch loads",
    "--threads 1": "`OMP_NUM_THREADS=1`, `--threads 1`",
}


def threads_table(report: dict) -> list[str]:
    programs = report["programs"]
    modes = [name.removeprefix("nobel ") for name in programs]
    header = ["setting", *(f"{m} {what}" for m in modes for what in ("decode", "TTFT"))]
    lines = markdown.head(header)
    for key, label in THREAD_SETTINGS.items():
        cells = [label]
        for table in programs.values():
            row = table[key]
            cells += [f"{row['decode_tok_s']} tok/s", f"{row['ttft_s']:.3f} s"]
        lines.append(markdown.row(cells))
    return lines


if __name__ == "__main__":
    sys.exit(main())
