"""lora-tui's programs against llama.cpp and PEFT eager: decode, prefill, time to first token.

    .venv/bin/pip install -e '.[test,bench]'   # llama-cpp-python builds from source, ~5 min
    .venv/bin/python -m benchmarks.vs_llamacpp [--work DIR] [--tokens 64] [--repeats 3] [--prepare]

On SmolLM2-135M-Instruct (the demo's base, fetched by pip) with one r=16 LoRA on all seven
projections (seeded random weights: speed does not depend on their values), one after the
other in this run:
- our 8da4w and fp32 programs, written by lora-export and run through lora-tui's engine
  (``ModelHost.answer``, the path ``lora-tui bench`` and the app use), each beside a bare
  ``forward`` loop on the same program to show what the engine itself costs;
- ExecuTorch's own ``export_llm`` programs of the same adapter and quantizations, through
  the same engine, to show lora-export's programs run as fast as the standard ones;
- two panes answering at once in the app's engine (``EngineProcess``, a lane and a core
  per pane): the two replies' decode speeds summed, as the status line's "together" is;
- llama.cpp Q4_1 + LoRA and F32 + LoRA, converted with llama.cpp's own
  ``convert_hf_to_gguf.py`` and ``convert_lora_to_gguf.py`` from the llama-cpp-python sdist
  (Q4_1 by ``llama_model_quantize`` from the F32 file);
- PEFT eager, the adapter unmerged.

Every runtime gets the same prompt token ids ("Tell me a story about a robot." in the chat
template), decodes greedily, and makes exactly N new tokens (stop tokens ignored). Each runs
alone in a fresh process on 2 threads; the median of the repeats is shown. Decode counts
the tokens after the first; prefill is prompt tokens / time to first token. The work folder
keeps the conversions and exports, so a rerun only measures; ``--prepare`` builds them and
stops, so that the measuring run can have the machine to itself.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import multiprocessing
import os
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks import markdown
from benchmarks.export_bench import make_adapter  # an r=16 adapter on all projections
from benchmarks.peft_reference import load_peft  # the fp32 PEFT reference
from benchmarks.record import write_results
from exporter.pipeline import DEFAULT_MAX_CONTEXT, ExportRequest, run_export
from exporter.smollm2 import fetch_smollm2_gguf
from lora_tui.common.native_output import native_output_to
from lora_tui.engine.paths import cache_dir
from lora_tui.format import FP32, Quantization

LLAMA_CPP = "llama-cpp-python==0.3.36"
PROMPT = "Tell me a story about a robot."
THREADS = 2
REBUILD = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON '
    f'-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON" pip install --force-reinstall --no-deps {LLAMA_CPP}'
)
QUANTIZATIONS = {"8da4w": Quantization("8da4w", 32), "fp32": FP32}


@dataclasses.dataclass(frozen=True)
class Speed:
    ttft_s: float
    decode_tok_s: float
    prompt_tokens: int

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.ttft_s


def median_speed(runs: list[Speed]) -> Speed:
    return Speed(
        statistics.median(r.ttft_s for r in runs),
        statistics.median(r.decode_tok_s for r in runs),
        runs[0].prompt_tokens,
    )


def timed_decode(first: Callable[[], int], step: Callable[[int], int], n: int, prompt: int):
    """Run the prefill (``first`` returns the first token), then n - 1 greedy steps."""
    started = time.perf_counter()
    token = first()
    first_at = time.perf_counter()
    for _ in range(n - 1):
        token = step(token)
    return Speed(first_at - started, (n - 1) / (time.perf_counter() - first_at), prompt)


# --- the runtimes; each function runs in its own process -------------------------------


def run_program(
    weights: Path, program: Path, tokenizer: Path, tokens: int, repeats: int
) -> dict[str, object]:
    """A program through the engine, and in a bare forward loop; the prompt's ids."""
    from lora_tui.engine import GenerationSettings
    from lora_tui.engine.types import Message

    torch.set_num_threads(THREADS)
    host, name = open_program(weights, program, tokenizer)
    session = host.sessions[name]
    ids = session.chat.encode_chat([Message("user", PROMPT)])
    settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)
    chunk = session.facts.max_prefill

    # session.forward is one module.forward and the last position's logits, nothing else.
    def bare_first() -> int:
        for start in range(0, len(ids), chunk):
            logits = session.forward(ids[start : start + chunk], start)
        return int(logits.argmax())

    position = [len(ids)]

    def bare_step(token: int) -> int:
        logits = session.forward([token], position[0])
        position[0] += 1
        return int(logits.argmax())

    engine, bare = [], []
    for _ in range(repeats + 1):  # the first round warms caches and is dropped
        host.clear([name])
        stats = host.answer(name, [Message("user", PROMPT)], settings).stats
        assert stats is not None and stats.new_tokens == tokens, stats
        engine.append(Speed(stats.ttft_s, stats.decode_tok_s, stats.prompt_tokens))
        position[0] = len(ids)
        bare.append(timed_decode(bare_first, bare_step, tokens, len(ids)))
    return {"ids": ids, "engine": median_speed(engine[1:]), "bare": median_speed(bare[1:])}


def open_program(weights: Path, program: Path, tokenizer: Path):
    """A ``ModelHost`` with ``program`` loaded (its pre-flight child ended), and its name;
    it answers to the length asked, whatever tokens it picks (stop tokens off)."""
    from lora_tui.engine import ModelHost

    with native_output_to(Path(os.devnull)):
        host = ModelHost(weights, tokenizer)
        name = host.load(program).name
        host.end_checks()
    session = host.sessions[name]
    session.chat = dataclasses.replace(session.chat, stop_ids=frozenset())
    return host, name


def together(speeds: list[Speed]) -> Speed:
    """Answers given at once as one: decode speeds and prompts summed, the later first
    token as TTFT."""
    return Speed(
        max(s.ttft_s for s in speeds),
        sum(s.decode_tok_s for s in speeds),
        sum(s.prompt_tokens for s in speeds),
    )


class TwoPanes:
    """Two panes at once in the app's engine: the program under two names (the app opened
    with two panes: a lane each, a core each)."""

    def __init__(self, weights: Path, program: Path, tokenizer: Path, tokens: int) -> None:
        from benchmarks.parallel_panes import OpenEngine
        from lora_tui.engine import GenerationSettings

        self.names = ["a", "b"]
        programs = [(program, name) for name in self.names]
        self.opened = OpenEngine(weights, programs, tokenizer=tokenizer, panes=2)
        self.tokens = tokens
        self.settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)

    def decode(self) -> Speed:
        """Both answer at once (``together``)."""
        _, done = self.opened.answer(PROMPT, self.names, self.settings)
        stats = [reply.stats for reply in done.values()]
        if any(s is None or s.new_tokens != self.tokens for s in stats):
            # The engine stops at a stop token: a reply that did is not this length.
            raise SystemExit(f"two panes: a reply was not {self.tokens} tokens long ({stats})")
        return together(
            [Speed(s.ttft_s, s.decode_tok_s, s.prompt_tokens) for s in stats if s is not None]
        )

    def close(self) -> None:
        self.opened.close()


def run_two_panes(
    weights: Path, program: Path, tokenizer: Path, tokens: int, repeats: int
) -> Speed:
    """Two panes at once (``TwoPanes``), the median of ``repeats`` answers after a warm-up."""
    panes = TwoPanes(weights, program, tokenizer, tokens)
    try:
        runs = [panes.decode() for _ in range(repeats + 1)]  # the first warms caches
        return median_speed(runs[1:])
    finally:
        panes.close()


def open_llamacpp(model: Path, lora: Path, threads: int = THREADS, n_ctx: int = 512):
    """llama.cpp over ``model`` with ``lora`` applied, on ``threads`` threads."""
    from llama_cpp import Llama

    return Llama(
        model_path=str(model),
        lora_path=str(lora),
        n_ctx=n_ctx,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )


def llamacpp_speed(llm, ids: list[int], tokens: int) -> Speed:
    """One greedy answer of ``tokens`` new tokens to ``ids``, from an empty cache."""
    llm.reset()  # no reuse of a cached prompt between answers
    generator = llm.generate(ids, temp=0.0, reset=True)
    step = lambda _, g=generator: next(g)  # noqa: E731  (the generator ignores the token)
    return timed_decode(generator.__next__, step, tokens, len(ids))


def run_llamacpp(model: Path, lora: Path, ids: list[int], tokens: int, repeats: int) -> Speed:
    llm = open_llamacpp(model, lora)
    runs = [llamacpp_speed(llm, ids, tokens) for _ in range(repeats + 1)]
    return median_speed(runs[1:])


def run_peft(hf_base: Path, adapter: Path, ids: list[int], tokens: int, repeats: int) -> Speed:
    torch.set_num_threads(THREADS)
    model, _ = load_peft(hf_base, adapter)
    cache: list[object] = [None]

    def first() -> int:
        out = model(torch.tensor([ids]), use_cache=True)
        cache[0] = out.past_key_values
        return int(out.logits[0, -1].argmax())

    def step(token: int) -> int:
        out = model(torch.tensor([[token]]), past_key_values=cache[0], use_cache=True)
        cache[0] = out.past_key_values
        return int(out.logits[0, -1].argmax())

    with torch.no_grad():
        runs = [timed_decode(first, step, tokens, len(ids)) for _ in range(repeats + 1)]
    return median_speed(runs[1:])


def in_child(function, *args):
    """Run one measurement alone in a fresh process: no thread pool, weight cache or
    allocator state carries over from one runtime to the next."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        try:
            return pool.submit(function, *args).result()
        except concurrent.futures.process.BrokenProcessPool:
            raise SystemExit(
                f"{function.__name__} crashed. If llama.cpp died of an illegal instruction "
                "(a CPU that advertises AMX inside a sandbox that does not allow it), rebuild "
                f"it without: {REBUILD}"
            ) from None


# --- building the inputs ----------------------------------------------------------------


def hf_base_folder(gguf: Path, folder: Path) -> Path:
    """The base as a Hugging Face folder (fp32), which llama.cpp's converters read."""
    if (folder / "config.json").is_file():
        return folder
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # transformers dequantized the GGUF to fp32 but still calls the model GGUF-quantized,
    # and save_pretrained refuses that.
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(folder, safe_serialization=True)
    save_smollm2_tokenizer(gguf, folder)
    return folder


def save_smollm2_tokenizer(gguf: Path, folder: Path) -> None:
    """SmolLM2's tokenizer and chat template, from its GGUF, as Hugging Face files in
    ``folder``: what llama.cpp's converter recognises (its pre-tokenizer by hash)."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)


def llama_cpp_source(work: Path) -> Path:
    """llama.cpp as vendored in the llama-cpp-python sdist: its converters and gguf-py."""
    source = work / "llama-cpp-src"
    if not (source / "convert_lora_to_gguf.py").is_file():
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*pip, LLAMA_CPP, "-d", str(work)], check=True, capture_output=True)
        archive = next(work.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(archive) as tar:
            top = tar.getmembers()[0].name.split("/")[0]
            vendored = f"{top}/vendor/llama.cpp/"
            members = [m for m in tar.getmembers() if m.name.startswith(vendored)]
            tar.extractall(work / "sdist", members=members, filter="data")
        (work / "sdist" / vendored).rename(source)
    return source


def convert(source: Path, script: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(source / "gguf-py")}
    result = subprocess.run(
        [sys.executable, str(source / script), *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"{script} failed:\n{result.stderr[-2000:]}")


def llama_cpp_models(
    work: Path, hf_base: Path, adapter: Path, quantized: tuple[str, ...] = ("Q4_1",)
) -> dict[str, Path]:
    """llama.cpp's own conversions: ``F32`` (``convert_hf_to_gguf.py``), each of
    ``quantized`` (llama.cpp's ftype names, ``llama_model_quantize`` from F32) and the
    adapter as ``lora`` (``convert_lora_to_gguf.py``, f32). Made once in ``work``."""
    source = llama_cpp_source(work)
    models = {"F32": work / "base-f32.gguf", "lora": work / "lora-f32.gguf"}
    if not models["F32"].is_file():
        convert(
            source,
            "convert_hf_to_gguf.py",
            str(hf_base),
            "--outtype",
            "f32",
            "--outfile",
            str(models["F32"]),
        )
    for ftype in quantized:
        models[ftype] = work / f"base-{ftype.lower()}.gguf"
        if not models[ftype].is_file():
            quantize_gguf(models["F32"], models[ftype], ftype)
    if not models["lora"].is_file():
        convert(
            source,
            "convert_lora_to_gguf.py",
            "--base",
            str(hf_base),
            "--outtype",
            "f32",
            "--outfile",
            str(models["lora"]),
            str(adapter),
        )
    return models


def quantize_gguf(f32: Path, out: Path, ftype: str) -> None:
    """``llama_model_quantize`` to ``ftype`` (``Q4_1``, ``Q8_0``: ``LLAMA_FTYPE_MOSTLY_*``)."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.nthread = THREADS
    with native_output_to(out.with_suffix(".log")):  # a line per tensor, kept off the screen
        code = llama_cpp.llama_model_quantize(
            str(f32).encode(), str(out).encode(), ctypes.byref(params)
        )
    if code != 0:
        raise SystemExit(f"llama_model_quantize {ftype} failed ({code})")


def our_programs(work: Path, gguf: Path, adapter: Path) -> dict[str, Path]:
    """One folder per quantization; lora-export keeps what is current, so reruns are quick."""
    folders = {}
    for label, quantization in QUANTIZATIONS.items():
        out = work / f"lora-export-{label}"
        request = ExportRequest(gguf, [("r16", adapter)], out, quantization=quantization)
        started = time.perf_counter()
        with native_output_to(work / "export.log"):
            result = run_export(request)
        if result.built:
            seconds = time.perf_counter() - started
            print(f"lora-export --quantize {quantization.mode}: {seconds:.0f} s")
        folders[label] = out
    return folders


def export_llm_programs(work: Path, hf_base: Path, adapter: Path) -> dict[str, Path]:
    """The same adapter written by ExecuTorch's own ``export_llm`` (about 7 and 11 minutes
    here), at lora-export's context length, as ``r16.pte`` beside its own foundation."""
    from tests.support.export_llm import export_with_export_llm

    folders = {}
    for label, quantization in QUANTIZATIONS.items():
        out = work / f"export_llm-{label}"
        if not (out / "r16.pte").is_file():
            started = time.perf_counter()
            export_with_export_llm(
                hf_base, adapter, out, "r16", DEFAULT_MAX_CONTEXT, quantization=quantization
            )
            print(f"export_llm {label}: {time.perf_counter() - started:.0f} s")
        folders[label] = out
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=cache_dir() / "bench-llamacpp")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prepare", action="store_true", help="build the inputs, measure nothing")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)

    gguf = fetch_smollm2_gguf(cache_dir() / "model")
    adapter = work / "adapter-r16"
    if not (adapter / "adapter_config.json").is_file():
        make_adapter(gguf, adapter, seed=1)
    hf_base = hf_base_folder(gguf, work / "hf-base")
    folders = our_programs(work, gguf, adapter)
    theirs = export_llm_programs(work, hf_base, adapter)
    llama = llama_cpp_models(work, hf_base, adapter)
    if args.prepare:
        return
    rows, ids = measure(folders, theirs, llama, hf_base, adapter, args.tokens, args.repeats)
    print(
        f"\nSmolLM2-135M-Instruct + r=16 LoRA (7 projections); {len(ids)} prompt tokens, "
        f"{args.tokens} new, greedy; median of {args.repeats}; {THREADS} threads"
    )
    print(f"{'':<30}{'decode tok/s':>14}{'prefill tok/s':>15}{'TTFT ms':>10}")
    for name, speed in rows.items():
        print(
            f"{name:<30}{speed.decode_tok_s:>14.1f}{speed.prefill_tok_s:>15.1f}"
            f"{speed.ttft_s * 1000:>10.1f}"
        )
    sizes = {label: (f / "foundation.ptd").stat().st_size for label, f in folders.items()}
    print_targets(rows, sizes)
    report = {name: dataclasses.asdict(speed) for name, speed in rows.items()}
    write_results("vs_llamacpp", {"tokens": args.tokens, "threads": THREADS, "rows": report})


def measure(
    folders: dict[str, Path],
    theirs: dict[str, Path],
    llama: dict[str, Path],
    hf_base: Path,
    adapter: Path,
    tokens: int,
    repeats: int,
) -> tuple[dict[str, Speed], list[int]]:
    """Every runtime on the same prompt ids, each in a child process of its own."""
    rows: dict[str, Speed] = {}
    ids: list[int] = []
    for label, folder in folders.items():
        files = (folder / "foundation.ptd", folder / "r16.pte", hf_base, tokens, repeats)
        measured = in_child(run_program, *files)
        ids = measured["ids"]
        rows[f"lora-tui {label}"] = measured["engine"]
        rows[f"  bare forward loop, {label}"] = measured["bare"]
        rows[f"lora-tui {label}, two panes"] = in_child(run_two_panes, *files)
        standard = theirs[label]
        files = (standard / "foundation.ptd", standard / "r16.pte", hf_base, tokens, repeats)
        rows[f"export_llm {label}"] = in_child(run_program, *files)["engine"]
    for name in ("Q4_1", "F32"):
        rows[f"llama.cpp {name} + LoRA"] = in_child(
            run_llamacpp, llama[name], llama["lora"], ids, tokens, repeats
        )
    rows["PEFT eager"] = in_child(run_peft, hf_base, adapter, ids, tokens, repeats)
    return rows, ids


def print_targets(rows: dict[str, Speed], sizes: dict[str, int]) -> None:
    def ratio(a: str, b: str) -> float:
        return rows[a].decode_tok_s / rows[b].decode_tok_s

    checks = [
        (what, ratio(ours, theirs), ">=", target)
        for what, ours, theirs, target in VS_LLAMACPP_RATIOS
    ]
    checks.append(("8da4w foundation / fp32 foundation", sizes["8da4w"] / sizes["fp32"], "<=", 0.2))
    print()
    for label, value, sense, target in checks:
        met = value >= target if sense == ">=" else value <= target
        print(f"{label:<38}{value:>7.2f}   target {sense} {target:<4} {'met' if met else 'MISSED'}")
    for label in QUANTIZATIONS:
        print(f"{label} decode / PEFT eager: {ratio(f'lora-tui {label}', 'PEFT eager'):.1f}x")


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


VS_LLAMACPP_RATIOS = [  # (what, ours, theirs, target): issue 26's decode targets
    ("8da4w decode / llama.cpp Q4_1 + LoRA", "lora-tui 8da4w", "llama.cpp Q4_1 + LoRA", 1.5),
    ("fp32 decode / llama.cpp F32 + LoRA", "lora-tui fp32", "llama.cpp F32 + LoRA", 1.0),
    ("fp32 decode / PEFT eager", "lora-tui fp32", "PEFT eager", 3.0),
    ("engine / bare loop, 8da4w", "lora-tui 8da4w", "  bare forward loop, 8da4w", 0.9),
    ("engine / bare loop, fp32", "lora-tui fp32", "  bare forward loop, fp32", 0.9),
    ("lora-export / export_llm program, 8da4w", "lora-tui 8da4w", "export_llm 8da4w", 0.95),
    ("lora-export / export_llm program, fp32", "lora-tui fp32", "export_llm fp32", 0.95),
    ("two panes / one pane, 8da4w", "lora-tui 8da4w, two panes", "lora-tui 8da4w", 1.4),
    ("two panes / one pane, fp32", "lora-tui fp32, two panes", "lora-tui fp32", 1.1),
]


def vs_llamacpp_table(report: dict) -> list[str]:
    rows = report["rows"]
    lines = markdown.head(["", "decode tok/s", "prefill tok/s", "TTFT"])
    for name, speed in rows.items():
        label = f"**{name}**" if name.startswith("lora-tui") else name.strip()
        prefill = speed["prompt_tokens"] / speed["ttft_s"]
        cells = [label, f"{speed['decode_tok_s']:.1f}", f"{prefill:.1f}"]
        lines.append(markdown.row([*cells, f"{speed['ttft_s'] * 1000:.0f} ms"]))
    for what, ours, theirs, target in VS_LLAMACPP_RATIOS:
        ratio = rows[ours]["decode_tok_s"] / rows[theirs]["decode_tok_s"]
        verdict = "met" if ratio >= target else "**missed**"
        lines.append(
            markdown.row([f"{what} (target ≥ {target}×)", f"{ratio:.2f}×: {verdict}", "", ""])
        )
    return lines


def speed_summary_table(report: dict) -> list[str]:
    """The README's summary of ``vs_llamacpp``: decode per quantization, one pane and two,
    beside export_llm's program of the same adapter and llama.cpp with the same LoRA."""
    rows = report["rows"]
    runs = {  # label: the rows at 8da4w and at fp32
        "lora-tui, one pane": ("lora-tui 8da4w", "lora-tui fp32"),
        "lora-tui, two panes at once (summed)": (
            "lora-tui 8da4w, two panes",
            "lora-tui fp32, two panes",
        ),
        "`export_llm`'s program of the same adapter, same engine": (
            "export_llm 8da4w",
            "export_llm fp32",
        ),
        "llama.cpp with the same LoRA": ("llama.cpp Q4_1 + LoRA", "llama.cpp F32 + LoRA"),
    }
    lines = markdown.head(["decode, tok/s", "8da4w (llama.cpp: Q4_1)", "fp32 (llama.cpp: F32)"])
    for label, keys in runs.items():
        lines.append(markdown.row([label, *(f"{rows[key]['decode_tok_s']:.1f}" for key in keys)]))
    return lines


if __name__ == "__main__":
    main()
