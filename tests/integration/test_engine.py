"""The engine on the tiny fixtures: sharing, streaming, stops, cancel, KV reuse, overflow."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lora_tui.engine import (
    EngineFailed,
    EngineReady,
    GenerationSettings,
    Loaded,
    LoadFailed,
    Message,
    ModelHost,
    Piece,
    ReplyDone,
    ReplyEnd,
)
from lora_tui.engine.conversation import Conversation
from lora_tui.engine.preflight import CHECKER_MODULE
from lora_tui.engine.worker import EngineProcess, EventCollector
from lora_tui.format import ArtifactError
from tests.support.artifacts import MAX_CONTEXT, TinyArtifacts
from tests.support.checks import assert_one_line_error

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=24)


@pytest.fixture(scope="module")
def host(tiny_artifacts: TinyArtifacts) -> ModelHost:
    host = ModelHost(tiny_artifacts.foundation)
    for name in ("full", "partial", "base"):
        host.load(tiny_artifacts.program(name))
    return host


def run_reply(
    host: ModelHost, name: str, text: str, settings=GREEDY, chat: Conversation | None = None
) -> tuple[list, ReplyDone]:
    """``text`` answered in a conversation of its own, or as the next turn of ``chat``."""
    chat = chat or Conversation()
    events = list(host.generate(name, chat.ask(text), settings))
    assert isinstance(events[-1], ReplyDone)
    chat.answered(events[-1])
    return events[:-1], events[-1]


def test_sharing_is_confirmed_on(host: ModelHost) -> None:
    assert host.sharing.enabled, host.sharing.detail
    assert "confirmed" in host.sharing.detail


def test_streamed_pieces_make_the_reply(host: ModelHost) -> None:
    host.clear()
    events, done = run_reply(host, "full", "Tell me about café ✓")
    pieces = [e.text for e in events if isinstance(e, Piece)]
    assert pieces and "".join(pieces) == done.text
    assert done.end is ReplyEnd.LENGTH and done.stats and done.stats.new_tokens == 24
    assert done.stats.ttft_s > 0 and done.stats.decode_tok_s > 0 and done.stats.prefill_tok_s > 0


def test_stream_decoder_keeps_spaces_and_multibyte_text(host: ModelHost) -> None:
    chat = host.foundation.chat
    text = "Héllo wörld, naïve café — 日本語 ✓ done"
    decoder = chat.decoder()
    ids = chat.tokenizer.encode(text, add_special_tokens=False).ids
    pieces = [decoder.step(chat.tokenizer, i) for i in ids]
    assert None in pieces  # some tokens are partial characters and wait for the next
    assert "".join(p for p in pieces if p) == text


def test_stop_token_ends_the_reply(host: ModelHost) -> None:
    host.clear()
    run_reply(host, "partial", "What is the answer?")
    tokens = host.sessions["partial"].last_reply_tokens
    stop_at = next(i for i, t in enumerate(tokens) if i >= 3 and t not in tokens[:i])
    session = host.sessions["partial"]
    original = session.chat
    session.chat = dataclasses.replace(original, stop_ids=frozenset({tokens[stop_at]}))
    try:
        host.clear(["partial"])
        _, done = run_reply(host, "partial", "What is the answer?")
    finally:
        session.chat = original
    assert done.end is ReplyEnd.STOP
    assert session.last_reply_tokens == tokens[:stop_at]


def test_cancel_keeps_the_partial_reply(host: ModelHost) -> None:
    host.clear()
    host.start("full", [Message("user", "Count to ten")], GenerationSettings(max_new_tokens=64))
    events = []
    while len([e for e in events if isinstance(e, Piece)]) < 5:
        events.extend(host.step())
    host.cancel(["full"])
    while not any(isinstance(e, ReplyDone) for e in events):
        events.extend(host.step())
    done = events[-1]
    assert done.end is ReplyEnd.CANCELLED
    assert done.text == "".join(e.text for e in events if isinstance(e, Piece)) != ""
    assert not host.busy


def test_follow_up_reuses_the_cache_and_matches_a_full_prefill(host: ModelHost) -> None:
    host.clear()
    chat = Conversation()
    run_reply(host, "full", "What is the capital of France?", chat=chat)
    history = list(chat.messages)
    _, second = run_reply(host, "full", "And of Italy?", chat=chat)
    assert second.stats and second.stats.reused_tokens > 0
    reused_tokens = host.sessions["full"].last_reply_tokens

    host.clear(["full"])  # same conversation, empty KV cache: full re-prefill
    _, again = run_reply(host, "full", "And of Italy?", chat=Conversation.of(history))
    assert again.stats and again.stats.reused_tokens == 0
    assert host.sessions["full"].last_reply_tokens == reused_tokens


def test_context_overflow_drops_old_turns(host: ModelHost) -> None:
    host.clear()
    forgotten = 0
    settings = GenerationSettings(max_new_tokens=30)
    chat = Conversation()
    for turn in range(8):
        events, done = run_reply(host, "base", f"Turn {turn}: tell me more", settings, chat)
        assert done.end in (ReplyEnd.LENGTH, ReplyEnd.CONTEXT, ReplyEnd.STOP), done.error
        forgotten += done.forgotten
    assert len(host.sessions["base"].cached) <= MAX_CONTEXT
    # The caller forgot what the context no longer held: the engine said how much.
    assert forgotten and len(chat.messages) == 2 * 8 - forgotten


def test_message_longer_than_the_context_is_refused_not_crashed(host: ModelHost) -> None:
    host.clear()
    _, done = run_reply(host, "base", "word " * (MAX_CONTEXT * 2))
    assert done.end is ReplyEnd.ERROR and "context holds" in (done.error or "")
    _, after = run_reply(host, "base", "still there?")  # the session still works
    assert after.end is not ReplyEnd.ERROR


def drain(host: ModelHost) -> list[ReplyDone]:
    done = []
    while host.busy:
        done += [e for e in host.step() if isinstance(e, ReplyDone)]
    return done


def test_regenerate_answers_the_last_prompt_again_and_a_fixed_seed_repeats(
    host: ModelHost,
) -> None:
    host.clear()
    sampled = GenerationSettings(temperature=1.0, top_p=1.0, max_new_tokens=16, seed=7)
    chat = Conversation()
    run_reply(host, "full", "Hello there", chat=chat)
    asked = chat.ask("Tell me more")
    first = host.answer("full", asked, sampled)
    host.start("full", asked, sampled)  # answering again is the same conversation, sent again
    [again] = drain(host)
    assert again.text == first.text  # the same seed, the same conversation: the same reply
    assert again.stats and again.stats.reused_tokens > 0  # the first exchange stayed cached
    host.start("full", asked, GenerationSettings(**{**sampled.__dict__, "seed": 8}))
    [other] = drain(host)
    assert other.text != first.text


def test_round_robin_keeps_every_adapter_moving(host: ModelHost) -> None:
    host.clear()
    for name in ("full", "partial", "base"):
        host.start(name, [Message("user", "Hello")], GenerationSettings(max_new_tokens=12))
    order = []
    while host.busy:
        order += [e.adapter for e in host.step() if isinstance(e, Piece)]
    first_dozen = order[:12]
    assert {"full", "partial", "base"} <= set(first_dozen)


def test_a_reply_alone_prefills_as_many_tokens_as_the_program_takes_at_once(
    host: ModelHost,
) -> None:
    session = host.sessions["full"]
    bound = session.module.method_meta("forward").input_tensor_meta(0).sizes()[-1]
    assert session.facts.max_prefill == min(bound, MAX_CONTEXT - 1)  # not get_max_seq_len
    sizes: list[int] = []
    forward = session.forward

    def watched(tokens: list[int], position: int):
        sizes.append(len(tokens))
        return forward(tokens, position)

    session.forward = watched  # type: ignore[method-assign]
    long = [Message("user", " ".join(["words to prefill"] * 6))]
    short = GenerationSettings(temperature=0.0, max_new_tokens=4)
    try:
        host.clear()
        host.start("full", long, short)
        [alone] = drain(host)
        assert alone.error is None, alone.error
        prompt = alone.stats.prompt_tokens if alone.stats else 0
        assert prompt > 2 * 32 and sizes[0] == min(prompt, session.facts.max_prefill)

        host.clear()
        sizes.clear()
        host.start("full", long, short)
        host.start("partial", [Message("user", "Hello")], short)
        beside = {r.adapter: r for r in drain(host)}["full"]
        assert sizes[:2] == [32, 32]  # a fair share of the process for the other reply
    finally:
        session.forward = forward  # type: ignore[method-assign]
    assert beside.text == alone.text  # the same answer, prefilled either way


# --- bad input ----------------------------------------------------------------------------


def bench(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lora_tui.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def copied(tiny_artifacts: TinyArtifacts, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    return out


def test_program_from_another_foundation(copied: Path) -> None:
    manifest = json.loads((copied / "manifest.json").read_text())
    manifest["foundation_id"] += 1  # as if foundation.ptd came from another export
    (copied / "manifest.json").write_text(json.dumps(manifest))
    done = bench(["--weights", str(copied / "foundation.ptd"), str(copied / "full.pte")])
    assert_one_line_error(done, "full.pte", "another foundation")


def test_truncated_program(copied: Path) -> None:
    program = copied / "full.pte"
    program.write_bytes(program.read_bytes()[:4000])
    done = bench(["--weights", str(copied / "foundation.ptd"), str(program)])
    assert_one_line_error(done, "full.pte", "truncated")


def test_truncated_weights(copied: Path) -> None:
    weights = copied / "foundation.ptd"
    weights.write_bytes(weights.read_bytes()[:100_000])
    done = bench(["--weights", str(weights), str(copied / "full.pte")])
    assert_one_line_error(done, "foundation.ptd", "truncated")


def test_not_a_program(copied: Path) -> None:
    fake = copied / "notes.pte"
    fake.write_text("just some text, long enough to have a header of forty bytes or more")
    done = bench(["--weights", str(copied / "foundation.ptd"), str(fake)])
    assert_one_line_error(done, "notes.pte", "not an ExecuTorch program")


def test_missing_tokenizer(copied: Path) -> None:
    (copied / "tokenizer.json").unlink()
    done = bench(["--weights", str(copied / "foundation.ptd"), str(copied / "full.pte")])
    assert_one_line_error(done, "tokenizer.json", "missing")


def test_missing_program(copied: Path) -> None:
    done = bench(["--weights", str(copied / "foundation.ptd"), str(copied / "gone.pte")])
    assert_one_line_error(done, "gone.pte", "no such file")


def test_host_error_names_the_file(copied: Path, host: ModelHost) -> None:
    with pytest.raises(ArtifactError, match="gone.pte"):
        host.load(copied / "gone.pte")


# --- memory: sharing really on -------------------------------------------------------------


def bench_json(out: Path, share: bool) -> dict:
    programs = [str(out / "full.pte"), str(out / "partial.pte"), str(out / "full.pte")]
    args = ["--weights", str(out / "foundation.ptd"), *programs, "--json", "--max-new-tokens", "4"]
    done = bench(args + ([] if share else ["--no-share"]))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_second_adapter_costs_far_less_with_sharing(tiny_artifacts: TinyArtifacts) -> None:
    foundation_mib = tiny_artifacts.foundation.stat().st_size / 2**20
    shared = bench_json(tiny_artifacts.out, share=True)
    unshared = bench_json(tiny_artifacts.out, share=False)
    assert shared["sharing"] is True and unshared["sharing"] is False
    assert {a["quantization"] for a in shared["adapters"]} == {"fp32"}
    on = [a["increment_mib"] for a in shared["adapters"]]
    off = [a["increment_mib"] for a in unshared["adapters"]]
    # Without the cache every program packs its own copy of the foundation.
    assert min(off[1:]) > 0.7 * foundation_mib, (off, foundation_mib)
    # With it, later programs add little: far below the first and below the unshared run.
    assert max(on[1:]) < 0.35 * foundation_mib, (on, foundation_mib)
    assert max(on[1:]) < min(off[1:]) / 2


# --- threads ---------------------------------------------------------------------------------

THREADS_PROBE = """
import json, sys
from pathlib import Path
from lora_tui.engine import GenerationSettings, ModelHost
threads = int(sys.argv[2]) if sys.argv[2] != "default" else None
host = ModelHost(Path(sys.argv[1]) / "foundation.ptd", threads=threads)
name = host.load(Path(sys.argv[1]) / "full.pte").name
from lora_tui.engine import Message
settings = GenerationSettings(temperature=0.0, max_new_tokens=12)
reply = host.answer(name, [Message("user", "Count to five")], settings)
print(json.dumps({"threads": host.threads, "text": reply.text}))
"""


def without_omp_setting() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


def threads_probe(out: Path, threads: str) -> dict:
    # A fresh process each: XNNPACK's pool is sized once, before any program loads.
    done = subprocess.run(
        [sys.executable, "-c", THREADS_PROBE, str(out), threads],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_xnnpack_threads_are_sized_and_keep_the_answer(tiny_artifacts: TinyArtifacts) -> None:
    default = threads_probe(tiny_artifacts.out, "default")
    one = threads_probe(tiny_artifacts.out, "1")
    assert default["threads"] == len(os.sched_getaffinity(0)) and one["threads"] == 1
    assert one["text"] and one["text"] == default["text"]


def test_bench_holds_openmp_to_one_thread_and_takes_threads(
    tiny_artifacts: TinyArtifacts,
) -> None:
    out = tiny_artifacts.out
    args = ["--weights", str(out / "foundation.ptd"), str(out / "full.pte"), "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "lora_tui.cli", "bench", *args, "--max-new-tokens", "4"]
        + ["--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=without_omp_setting(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    # OpenMP's idle threads never spin beside XNNPACK's.
    assert report["threads"] == 1 and report["torch_threads"] == 1


# --- the worker process the UI uses --------------------------------------------------------


def test_engine_process_streams_two_adapters(
    tiny_artifacts: TinyArtifacts, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    events = []
    finished = threading.Event()

    def on_event(event) -> None:
        events.append(event)
        if sum(isinstance(e, ReplyDone) for e in events) == 2:
            finished.set()

    log = tmp_path / "engine.log"
    engine = EngineProcess(tiny_artifacts.foundation, on_event, log_path=log)
    try:
        engine.load(tiny_artifacts.program("full"))
        engine.load(tiny_artifacts.program("missing"))
        engine.load(tiny_artifacts.program("partial"))
        hello = [Message("user", "Hello there")]
        engine.send({"full": hello, "partial": hello}, GenerationSettings(max_new_tokens=10))
        assert finished.wait(120), events
    finally:
        engine.close()
    assert isinstance(events[0], EngineReady) and events[0].sharing.enabled
    assert [e.adapter for e in events if isinstance(e, Loaded)] == ["full", "partial"]
    failed = [e for e in events if isinstance(e, LoadFailed)]
    assert len(failed) == 1 and "missing.pte" in failed[0].error
    done = {e.adapter: e for e in events if isinstance(e, ReplyDone)}
    assert set(done) == {"full", "partial"}
    captured = capfd.readouterr()
    assert captured.out == ""  # the runtime's own output stays in the worker's log


def test_a_long_paste_never_waits_for_a_busy_worker(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    """A conversation of megabytes, sent while the worker is still starting (it reads no
    command until it has imported the runtime and opened the foundation): the call returns
    before the worker has said a word, and the conversation still arrives whole, in order
    after the load (it is longer than the context, so the pane says so)."""
    events = EventCollector()
    engine = EngineProcess(tiny_artifacts.foundation, events, log_path=tmp_path / "engine.log")
    try:
        engine.load(tiny_artifacts.program("full"))
        engine.send({"full": [Message("user", "word " * 400_000)]}, GREEDY)
        assert events.events == []  # sent, without waiting for the worker to read it
        got = events.wait_for(lambda got: any(isinstance(e, ReplyDone) for e in got))
    finally:
        engine.close()
    [done] = [e for e in got if isinstance(e, ReplyDone)]
    assert done.end is ReplyEnd.ERROR and "context holds" in (done.error or "")


def test_app_refuses_a_bad_foundation_before_drawing(copied: Path) -> None:
    weights = copied / "foundation.ptd"
    weights.write_bytes(weights.read_bytes()[:50_000])
    done = subprocess.run(
        [sys.executable, "-m", "lora_tui.cli", "--weights", str(weights), str(copied / "full.pte")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(done, "foundation.ptd", "truncated")


# --- any ExecuTorch LLM program, with or without lora-export's manifest --------------------


@pytest.fixture
def bare(tiny_artifacts: TinyArtifacts, tmp_path: Path) -> Path:
    """The foundation and programs alone, as another exporter would leave them: no manifest,
    no tokenizer."""
    folder = tmp_path / "bare"
    folder.mkdir()
    for name in ("foundation.ptd", "full.pte", "base.pte"):
        shutil.copy(tiny_artifacts.out / name, folder / name)
    return folder


def test_programs_open_without_a_manifest(
    bare: Path, tiny_artifacts: TinyArtifacts, host: ModelHost
) -> None:
    tokenizer = tiny_artifacts.base_dir / "tokenizer.json"  # its folder has the chat template
    bare_host = ModelHost(bare / "foundation.ptd", tokenizer)
    info = bare_host.load(bare / "full.pte")
    assert (info.kind, info.rank, info.target_modules) == ("program", None, None)
    assert info.breakdown.adapter_weights_mib is None  # unknown, not made up
    # The template and stop ids read from the tokenizer's files are the ones lora-export used.
    assert bare_host.foundation.chat.template_source == host.foundation.chat.template_source
    assert bare_host.sessions["full"].chat.stop_ids == host.sessions["full"].chat.stop_ids
    host.clear()
    for text in ("What is the capital of France?", "Tell me about café ✓"):
        _, want = run_reply(host, "full", text)
        _, got = run_reply(bare_host, "full", text)
        assert got.text == want.text and got.end is want.end
        host.clear()
        bare_host.clear()


def test_bench_without_a_manifest_takes_a_tokenizer_folder(
    bare: Path, tiny_artifacts: TinyArtifacts
) -> None:
    programs = [str(bare / "full.pte"), str(bare / "base.pte")]
    args = ["--weights", str(bare / "foundation.ptd"), *programs, "--max-new-tokens", "4"]
    done = bench([*args, "--json", "--tokenizer", str(tiny_artifacts.base_dir)])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {row["name"]: row for row in report["adapters"]}
    assert set(rows) == {"full", "base"}
    assert rows["full"]["rank"] is None and rows["full"]["new_tokens"] == 4
    assert rows["base"]["true_increment_mib"] is not None


def test_no_tokenizer_without_a_manifest(bare: Path) -> None:
    done = bench(["--weights", str(bare / "foundation.ptd"), str(bare / "full.pte")])
    assert_one_line_error(done, "tokenizer.json", "--tokenizer")


def test_program_over_another_foundation_without_a_manifest(
    bare: Path, tiny_artifacts: TinyArtifacts, other_foundation: Path
) -> None:
    stranger = bare / "stranger.pte"
    shutil.copy(other_foundation / "base.pte", stranger)
    args = ["--weights", str(bare / "foundation.ptd"), str(stranger)]
    done = bench([*args, "--tokenizer", str(tiny_artifacts.base_dir)])
    assert_one_line_error(done, "stranger.pte", "another foundation")


def test_tokenizer_of_another_model(bare: Path, tiny_artifacts: TinyArtifacts, tmp_path) -> None:
    from tokenizers import AddedToken, Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_artifacts.base_dir / "tokenizer.json"))
    tokenizer.add_special_tokens([AddedToken(f"<extra_{i}>", special=True) for i in range(300)])
    bigger = tmp_path / "bigger.json"
    tokenizer.save(str(bigger))
    done = bench(
        ["--weights", str(bare / "foundation.ptd"), str(bare / "full.pte")]
        + [
            "--tokenizer",
            str(bigger),
        ]
    )
    assert_one_line_error(done, "full.pte", "tokenizer has", "another model")


def test_not_an_llm_program(bare: Path, tiny_artifacts: TinyArtifacts, tmp_path: Path) -> None:
    import torch
    from executorch.exir import to_edge

    class Doubler(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    program = to_edge(torch.export.export(Doubler(), (torch.ones(2),))).to_executorch()
    path = tmp_path / "doubler.pte"
    path.write_bytes(program.buffer)
    args = ["--weights", str(bare / "foundation.ptd"), str(path)]
    done = bench([*args, "--tokenizer", str(tiny_artifacts.base_dir)])
    assert_one_line_error(done, "doubler.pte", "not an LLM program")


def test_folder_of_an_older_format_asks_for_a_re_export(copied: Path) -> None:
    manifest = json.loads((copied / "manifest.json").read_text())
    manifest["format"] = 2  # programs fed embeddings from a private embeddings.npy
    (copied / "manifest.json").write_text(json.dumps(manifest))
    done = bench(["--weights", str(copied / "foundation.ptd"), str(copied / "full.pte")])
    assert_one_line_error(done, "manifest.json", "format 2", "export the folder again")


# --- lanes: panes answering at the same time ----------------------------------------------


def _lanes(engine: EngineProcess) -> list[psutil.Process]:
    """The worker's children that run programs (not its pre-flight check)."""
    lanes = []
    for child in psutil.Process(engine.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):  # a checker that ended on its own
            if CHECKER_MODULE not in " ".join(child.cmdline()):
                lanes.append(child)
    return lanes


@contextlib.contextmanager
def _two_lanes(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> Iterator[tuple[EngineProcess, EventCollector, list[psutil.Process]]]:
    """An engine opened as lora-tui opens two panes, with "full" and "partial" loaded;
    closed on the way out."""
    events = EventCollector()
    engine = EngineProcess(
        tiny_artifacts.foundation, events, log_path=tmp_path / "engine.log", panes=2
    )
    try:
        engine.load(tiny_artifacts.program("full"))
        engine.load(tiny_artifacts.program("partial"))
        events.wait_for(lambda got: sum(isinstance(e, Loaded) for e in got) == 2)
        yield engine, events, _lanes(engine)
    finally:
        engine.close()


def test_two_panes_answer_at_once_in_two_lanes_as_each_alone(
    tiny_artifacts: TinyArtifacts, host: ModelHost, tmp_path: Path
) -> None:
    settings = GenerationSettings(max_new_tokens=16)
    alone = {}
    for name in ("full", "partial"):
        host.clear([name])
        alone[name] = host.answer(name, [Message("user", "Hello there")], settings).text
    with _two_lanes(tiny_artifacts, tmp_path) as (engine, events, lanes):
        assert len(lanes) == 2  # one program each, in processes of their own
        hello = [Message("user", "Hello there")]
        engine.send({"full": hello, "partial": hello}, settings)
        got = events.wait_for(lambda got: sum(isinstance(e, ReplyDone) for e in got) == 2)
        memory = engine.memory()
    done = {e.adapter: e for e in got if isinstance(e, ReplyDone)}
    assert {name: reply.text for name, reply in done.items()} == alone
    # The engine's memory is the worker's and its lanes' together: the lanes share the
    # worker's pages, so their summed RSS counts them again where PSS does not.
    assert memory is not None and memory.pss_mib and memory.rss_mib > memory.pss_mib
    assert memory.processes >= 3  # the worker and two lanes (and perhaps the checker)
    gone, alive = psutil.wait_procs(lanes, timeout=20)
    assert not alive, f"lanes left behind: {alive}"


def test_a_lane_that_dies_fails_the_engine_so_the_app_restarts_it(
    tiny_artifacts: TinyArtifacts, tmp_path: Path
) -> None:
    with _two_lanes(tiny_artifacts, tmp_path) as (engine, events, lanes):
        lanes[0].kill()
        got = events.wait_for(lambda got: any(isinstance(e, EngineFailed) for e in got))
    failed = next(e for e in got if isinstance(e, EngineFailed))
    assert failed.error == "engine lane exited (signal 9)"
    gone, alive = psutil.wait_procs(lanes, timeout=20)
    assert not alive, f"lanes left behind: {alive}"


def test_a_lane_uses_every_core_alone_and_its_share_beside_another(
    tiny_artifacts: TinyArtifacts, host: ModelHost, tmp_path: Path
) -> None:
    """Issue 45: on two cores, each lane's XNNPACK pool has two threads; a pane answering
    alone runs on both, two answering at once on one each, and alone again on both, as
    read back from the lane's pool (``pthreadpool_get_threads_count``: the fewest threads
    any step of the reply ran on). The answers are those of one process."""
    settings = GenerationSettings(max_new_tokens=64)
    hello = [Message("user", "Hello there")]
    alone = {}
    for name in ("full", "partial"):
        host.clear([name])
        alone[name] = host.answer(name, hello, settings).text
    events = EventCollector()
    engine = EngineProcess(
        tiny_artifacts.foundation, events, log_path=tmp_path / "engine.log", panes=2, cores=2
    )

    def answer(names: list[str]) -> dict[str, ReplyDone]:
        engine.clear(names)
        before = len(events.events)
        engine.send({name: hello for name in names}, settings)
        got = events.wait_for(
            lambda got: sum(isinstance(e, ReplyDone) for e in got[before:]) == len(names)
        )
        return {e.adapter: e for e in got[before:] if isinstance(e, ReplyDone)}

    try:
        engine.load(tiny_artifacts.program("full"))
        engine.load(tiny_artifacts.program("partial"))
        events.wait_for(lambda got: sum(isinstance(e, Loaded) for e in got) == 2)
        assert len(_lanes(engine)) == 2
        first = answer(["full"])["full"]
        # "partial" is sent while "full" answers: its lane is told one thread before its
        # Send, so all its steps run on one, and "full" drops to one between two steps.
        both = answer(["full", "partial"])
        last = answer(["partial"])["partial"]
    finally:
        engine.close()
    assert all(d.stats is not None for d in (first, last, *both.values()))
    assert first.stats.threads == 2 and first.text == alone["full"]
    assert both["partial"].stats.threads == 1 and both["full"].stats.threads == 1
    assert {name: d.text for name, d in both.items()} == alone
    assert last.stats.threads == 2 and last.text == alone["partial"]
