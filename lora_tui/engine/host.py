"""ModelHost: adapter programs over one shared foundation, in this process.

Scripts and benchmarks use it directly. The UI runs it in a worker process (see
``worker.py``) because ``forward`` holds the GIL for the whole call.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from lora_tui.engine.artifacts import Foundation, open_foundation
from lora_tui.engine.departure import Scoring
from lora_tui.engine.foundations import FoundationPrograms, labelled
from lora_tui.engine.loading import ProgramFacts, load_module, warm_up
from lora_tui.engine.memory import (
    MIB,
    MemorySample,
    added,
    anonymous_ranges,
    heap_in_use,
    sample,
    sample_tree,
)
from lora_tui.engine.packed import Packed, prepare_packed
from lora_tui.engine.pages import release, trim
from lora_tui.engine.preflight import CHECKER_MODULE, Preflight
from lora_tui.engine.probe import probe_tokens
from lora_tui.engine.protocol import Departure, Probed, Replied, ReplyDone
from lora_tui.engine.session import AdapterSession, Event, Reply
from lora_tui.engine.sharing import configure_sharing
from lora_tui.engine.threads import (
    configure_threads,
    pool_binding,
    resize_after_fork,
    use_threads,
)
from lora_tui.engine.types import (
    AdapterInfo,
    EngineError,
    GenerationSettings,
    MemoryBreakdown,
    Message,
    Sharing,
)
from lora_tui.format import (
    ProgramEntry,
    check_program_file,
    kv_cache_bytes,
    lora_weight_bytes,
    sha256_file,
)

# How long the copy of the base that replies are scored on stays after its last score: a
# round's replies, ending one after another, are scored on one copy; between rounds its
# KV cache and buffers (166 MiB for the demo's fp32 base) go.
SCORER_IDLE_S = 15.0


class ModelHost:
    def __init__(
        self,
        weights: Path,
        tokenizer: Path | None = None,
        share: bool = True,
        log_path: Path | None = None,
        threads: int | None = None,
        preflight: Preflight | None = None,
    ) -> None:
        """``preflight``: a checker already launched (the worker starts it before it imports
        the runtime, so the two imports overlap); by default one of its own."""
        # Threads and sharing must be configured before the first program loads.
        try:
            self.threads = configure_threads(threads)
        except ValueError as err:
            raise EngineError(str(err)) from None
        pool_binding()  # looked for once, so each reply can say how many threads it ran on
        self.sharing: Sharing = configure_sharing(share)
        self.foundation: Foundation = open_foundation(weights, tokenizer)
        self.packed: Packed | None = None  # the packed weights on disk, once checked
        self._packed_over: Path | None = None  # the program they were packed over
        self.baseline_rss_mib = sample(detailed=False).rss_mib
        self.sessions: dict[str, AdapterSession] = {}
        self.infos: dict[str, AdapterInfo] = {}
        self._replies: deque[Reply] = deque()
        # Replies being scored under a base (``departure.py``), each base's on a second copy
        # of its program, made at its first score and kept while the base stays.
        self._scores: deque[Scoring] = deque()
        self._scorers: dict[str, AdapterSession] = {}
        self._scored_at: float | None = None  # when the last queued score ended
        self._preflight = preflight or Preflight(log_path)
        # Programs that passed, by path, size and time of change: (facts, seconds it took).
        self._checked: dict[tuple[Path, int, int], tuple[ProgramFacts, float]] = {}
        # What a load's memory figures are read from: this process, or (in a lane) the
        # whole engine, where what a program adds is spread over processes sharing pages.
        self.measure: Callable[[], MemorySample] = sample
        # In a lane: the worker's seed, inherited with the packed weights it holds, kept
        # until this process's own first load holds them too (``hold_until_loaded``).
        self._inherited: object | None = None

    # --- loading -------------------------------------------------------------------------

    def check(self, pte: Path) -> ProgramFacts:
        """Try the program in a child process and check it fits this foundation and tokenizer;
        an ``EngineError`` says in one line why not. Nothing is loaded here."""
        check_program_file(pte)
        key = _file_key(pte)
        if key in self._checked:
            return self._checked[key][0]
        started = time.perf_counter()
        self._check_hash(pte)
        packed = self._packed_for(pte)
        try:
            facts = self._preflight.check(pte, self.foundation.path, packed)
        except EngineError:
            if packed is None and self._packed_over == pte:
                self.packed = None  # packing failed over this broken program: the next tries
            raise
        self._check_fit(pte, facts)
        self._checked[key] = facts, time.perf_counter() - started
        return facts

    def checked(self, pte: Path) -> tuple[ProgramFacts, float]:
        """``check``, and the seconds the check took (0 when it had passed before)."""
        facts = self.check(pte)
        return facts, self._checked[_file_key(pte)][1]

    def accept_check(self, pte: Path, facts: ProgramFacts, seconds: float) -> None:
        """Take a check another host made of this file (a lane's router checks for it)."""
        self._checked[_file_key(pte)] = facts, seconds

    def in_lane(self, engine: int, threads: int) -> None:
        """In a lane just forked from the engine's worker ``engine``: the worker checks, this
        process only loads, with a pool of ``threads``. A program's cost is what the engine
        as a whole grew by: the lane's own PSS would also count its share of pages other
        lanes map. The checker is left out: its copy goes once idle."""
        self._preflight.forget()
        self.measure = lambda: sample_tree(engine, leave_out=CHECKER_MODULE)
        resize_after_fork(threads)

    def use_threads(self, threads: int) -> None:
        """Run the next steps on ``threads`` of the pool's threads (a lane, told by its
        router how many lanes are busy; see ``threads.py``)."""
        use_threads(threads)

    def hold_until_loaded(self, seed: object | None) -> None:
        """In a lane: keep the worker's seed (a program never run here) only until this
        process loads one of its own, which takes the packed foundation from the weight
        cache; then let it go, with its KV cache and buffers (the heap is trimmed after)."""
        self._inherited = seed

    def _let_seed_go(self) -> None:
        self._inherited = None  # freed now (no collection: see lanes._fork_lane)

    def end_checks(self, idle_s: float = 0.0, wait: bool = True) -> float | None:
        """Let the pre-flight child go once it has had nothing to check for ``idle_s``
        (it starts again when needed); ``wait=False`` does not wait for it to be gone.
        Returns how long until it would go, or None."""
        idle = self._preflight.idle_s
        if idle is None:
            return None
        if idle >= idle_s:
            self._preflight.close(wait)
            return None
        return idle_s - idle

    def _packed_for(self, pte: Path) -> Path | None:
        """The foundation's packed weights on disk, packed over ``pte`` (in a child) if
        there are none yet: this process and its checker then map them instead of packing
        (``packed.py``). Before this process's first load, which always checks first."""
        if self.packed is None and self.sharing.enabled:
            manifest = self.foundation.manifest
            sha = manifest.foundation_sha256 if manifest else None
            self.packed = prepare_packed(self.foundation.path, pte, sha)
            self._packed_over = pte
        return self.packed.path if self.packed else None

    def _check_hash(self, pte: Path) -> None:
        """A program lora-export listed must be the bytes it wrote: a flipped bit in a
        weight would load and run, and silently answer differently."""
        _, entry = self.foundation.entry_for(pte)
        if entry is not None and entry.sha256 and sha256_file(pte) != entry.sha256:
            raise EngineError(
                f"{pte}: is not the program lora-export wrote (its SHA-256 differs from the "
                "manifest's: damaged or replaced); export it again"
            )

    def _check_fit(self, pte: Path, facts: ProgramFacts) -> None:
        manifest = self.foundation.manifest
        if manifest is not None and facts.foundation_id not in (None, manifest.foundation_id):
            raise EngineError(
                f"{pte}: was built for another foundation, not {self.foundation.path}"
            )
        tokens = self.foundation.chat.vocab_size
        if tokens > facts.vocab_size:
            raise EngineError(
                f"{pte}: the tokenizer has {tokens} tokens but the model only {facts.vocab_size}; "
                "the tokenizer is another model's (pass --tokenizer)"
            )

    def load(self, pte: Path, name: str | None = None) -> AdapterInfo:
        """Check, then load a program into this process."""
        facts = self.check(pte)
        key = _file_key(pte)
        check_s = self._checked[key][1]
        self._checked[key] = facts, 0.0  # a second copy is not checked again
        manifest_name, entry = self.foundation.entry_for(pte)
        name = name or manifest_name
        if name in self.sessions:
            raise EngineError(f"{pte}: an adapter named '{name}' is already loaded")
        before, mapped, heap = self.measure(), anonymous_ranges(), heap_in_use()
        started = time.perf_counter()
        module = load_module(pte, self.foundation.path)
        chat = self.foundation.chat.for_program(list(facts.eos_ids), facts.bos_id)
        probe = probe_tokens(chat.tokenizer, facts.bos_id, facts.vocab_size)
        # The warm-up is the probe: a few tokens cost about what one does.
        logits = warm_up(module, pte, self.foundation.path, probe[: facts.max_prefill])
        session = AdapterSession(name, module, chat, facts)
        session.probe = _probe(session, probe, logits)
        release(self.foundation.path)  # loaded and run: only the rows a step reads stay
        load_s = time.perf_counter() - started
        after, ranges = self.measure(), added(mapped, anonymous_ranges())
        heap_now = heap_in_use()
        heap_mib = max(0, heap_now - heap) / MIB if heap is not None and heap_now else 0.0
        info = AdapterInfo(
            name=name,
            path=str(pte),
            kind=entry.kind if entry else "program",
            rank=entry.rank if entry else None,
            target_modules=tuple(entry.target_modules) if entry else None,
            check_s=check_s,
            load_s=load_s,
            rss_before_mib=before.rss_mib,
            rss_after_mib=after.rss_mib,
            pss_before_mib=before.pss_mib,
            pss_after_mib=after.pss_mib,
            uss_after_mib=after.uss_mib,
            anon_increment_mib=_difference(after.anon_mib, before.anon_mib),
            breakdown=self._breakdown(pte, facts, entry),
            can_think=session.chat.supports_thinking,
            quantization=self.foundation.quantization,
            foundation=str(self.foundation.path),
            scale=entry.scale if entry else None,
            process=os.getpid(),
            ranges=ranges,
            heap_mib=heap_mib,
        )
        self.sessions[name] = session
        self.infos[name] = info
        self._let_seed_go()
        trim()  # what loading freed (the program's sections, the probe's outputs) goes back
        return info

    def probed(self, name: str) -> list[Probed]:
        """The load probe of ``name`` (once), for the router to compare with the base's."""
        session, info = self.sessions.get(name), self.infos.get(name)
        if session is None or info is None or session.probe is None:
            return []
        (tokens, logits), session.probe = session.probe, None
        return [Probed(name, info.kind == "base", tokens, logits)]

    def _breakdown(
        self, pte: Path, facts: ProgramFacts, entry: ProgramEntry | None
    ) -> MemoryBreakdown:
        manifest = self.foundation.manifest
        adapter = kv = None
        if manifest is not None and entry is not None:
            kv = kv_cache_bytes(manifest.shape, facts.max_context) / MIB
            adapter = lora_weight_bytes(manifest.shape, entry.rank or 0, entry.target_modules) / MIB
        return MemoryBreakdown(adapter, kv, pte.stat().st_size / MIB)

    def unload(self, name: str) -> list[Event]:
        events = self._stop_replies([name])
        self.sessions.pop(name, None)
        self.infos.pop(name, None)
        if self._scorers.pop(name, None) is not None:
            self._scores = deque(s for s in self._scores if s.base != name)
        return events

    def _stop_replies(self, names: list[str] | None) -> list[Event]:
        """Cancel and finish the matching replies now; returns their final events."""
        events: list[Event] = []
        kept: deque[Reply] = deque()
        for reply in self._replies:
            if names is None or reply.session.name in names:
                reply.cancel()
                events.extend(reply.step())  # a cancelled reply finishes in one step
            else:
                kept.append(reply)
        self._replies = kept
        return events

    # --- generation ----------------------------------------------------------------------

    def start(self, name: str, messages: Sequence[Message], settings: GenerationSettings) -> None:
        """Answer the last message of ``messages`` (when ``name`` is loaded and not answering)."""
        if name in self.sessions and all(r.session.name != name for r in self._replies):
            self._replies.append(self.sessions[name].reply(messages, settings))

    def cancel(self, names: list[str] | None = None) -> None:
        for reply in self._replies:
            if names is None or reply.session.name in names:
                reply.cancel()

    def clear(self, names: list[str] | None = None) -> list[Event]:
        """Stop their replies and drop their cached tokens, so the next reply prefills its
        whole conversation (as scripts do to answer every prompt the same way)."""
        events = self._stop_replies(names)
        for name, session in self.sessions.items():
            if names is None or name in names:
                session.cached.clear()
        return events

    @property
    def busy(self) -> bool:
        return bool(self._replies or self._scores)

    def step(self) -> list[Event | Replied | Departure]:
        """One unit of work for the next reply in turn (round-robin, token by token); a
        reply that ended whole is followed by what it ``Replied``. With no reply under way,
        a step of scoring one under its base: scoring never holds up a reply."""
        if not self._replies:
            return self._score_step()
        reply = self._replies.popleft()
        reply.alone = not self._replies
        events: list[Event | Replied | Departure] = [*reply.step()]
        if not reply.done(events):
            self._replies.append(reply)
        elif (replied := reply.session.last_replied) is not None:
            events.append(replied)
        return events

    # --- departure from the base ---------------------------------------------------------

    def score(self, base: str, replied: Replied) -> None:
        """Score ``replied`` under the base program ``base`` (loaded here), in the steps
        after the replies under way; an earlier score of the same adapter still waiting
        gives way to it."""
        scorer = self.scorer(base)
        if scorer is None or replied.adapter == base:
            return
        self._scores = deque(s for s in self._scores if s.adapter != replied.adapter)
        self._scores.append(Scoring(scorer, base, replied))

    def departure(self, base: str, adapter: str) -> Departure | None:
        """Score ``adapter``'s last whole reply under ``base`` now (``eval``); None when it
        has none, or the base is not loaded here."""
        session, scorer = self.sessions.get(adapter), self.scorer(base)
        if session is None or scorer is None or session.last_replied is None:
            return None
        return Scoring(scorer, base, session.last_replied).run()

    def scorer(self, base: str) -> AdapterSession | None:
        """The copy of the base program replies are scored on (made at its first use);
        None when ``base`` is not loaded here."""
        if base not in self.sessions:
            return None
        if base not in self._scorers:
            session, info = self.sessions[base], self.infos[base]
            module = load_module(Path(info.path), self.foundation.path)
            # Its method loads (and locks its mapping of the foundation) at its first run:
            # one token here, which the first score's prefill from position 0 overwrites.
            warm_up(module, Path(info.path), self.foundation.path)
            release(self.foundation.path)
            self._scorers[base] = AdapterSession(base, module, session.chat, session.facts)
        return self._scorers[base]

    def _score_step(self) -> list[Event | Replied | Departure]:
        if not self._scores:
            self._let_idle_scorers_go()
            return []
        scoring = self._scores[0]
        events = scoring.step()
        if scoring.done:
            self._scores.popleft()
            self._scored_at = time.monotonic()
        return list(events)

    def idle_chore_s(self) -> float | None:
        """With nothing to run: how long until a step has something to do (let an idle
        scorer go), None for never. A lane waits for commands no longer than this."""
        if self._scored_at is None or not self._scorers or self._scores:
            return None
        return max(0.0, self._scored_at + SCORER_IDLE_S - time.monotonic())

    def _let_idle_scorers_go(self) -> None:
        """Scorers made for queued scores go once idle for ``SCORER_IDLE_S`` (the next
        score makes one again: about half a second). ``departure`` (eval) keeps its own."""
        if (wait := self.idle_chore_s()) is not None and wait <= 0:
            self._scorers.clear()
            self._scored_at = None
            trim()

    def generate(
        self, name: str, messages: Sequence[Message], settings: GenerationSettings
    ) -> Iterator[Event]:
        """Run one adapter's reply to the end, yielding its events (for scripts and benches)."""
        if name not in self.sessions:
            raise EngineError(f"no adapter named '{name}' is loaded")
        reply = self.sessions[name].reply(messages, settings)
        reply.alone = True
        while True:
            events = reply.step()
            yield from events
            if reply.done(events):
                return

    def answer(
        self, name: str, messages: Sequence[Message], settings: GenerationSettings
    ) -> ReplyDone:
        """Run one adapter's reply to the end; how it ended, its text and its speed."""
        events = self.generate(name, messages, settings)
        return [e for e in events if isinstance(e, ReplyDone)][-1]


def _probe(
    session: AdapterSession, tokens: list[int], logits: torch.Tensor
) -> tuple[tuple[int, ...], bytes]:
    """The probe's last logits, run on where the warm-up left off (a program that takes
    fewer tokens at once than the probe has). The session's cache stays empty, so the first
    reply prefills from position 0, over what the probe left, as after any warm-up."""
    step = session.facts.max_prefill
    for start in range(step, len(tokens), step):
        logits = session.forward(tokens[start : start + step], start)
    last = logits.reshape(-1, logits.shape[-1])[-1].to(torch.float32)
    return tuple(tokens), last.contiguous().numpy().tobytes()


def _file_key(path: Path) -> tuple[Path, int, int]:
    stat = path.stat()
    return path.resolve(), stat.st_size, stat.st_mtime_ns


def _difference(after: float | None, before: float | None) -> float | None:
    return after - before if after is not None and before is not None else None


def open_hosts(
    groups: Sequence[FoundationPrograms],
    tokenizer: Path | None = None,
    share: bool = True,
    threads: int | None = None,
) -> list[tuple[FoundationPrograms, ModelHost]]:
    """A host per foundation in this process (``bench`` and ``eval``), each group labelled
    by its quantization when there are several. The weight cache keys packed weights by
    their bytes, so foundations side by side in one process never take each other's."""
    hosts = [ModelHost(g.weights, tokenizer, share=share, threads=threads) for g in groups]
    return list(
        zip(labelled(groups, [h.foundation.quantization for h in hosts]), hosts, strict=True)
    )
