"""An engine behind the UI's EngineClient interface with fixed, scripted behaviour.

It answers at once with fixed replies, memory and speeds, so UI tests and snapshots are
fast and stable. ``hold=True`` leaves replies mid-stream until cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from exporter.base import PROJECTIONS
from lora_tui.engine.memory import PACKING, MemorySample, Share, ToolLayout, ToolMemory
from lora_tui.engine.protocol import (
    Departure,
    EngineEvent,
    EngineReady,
    FoundationPacked,
    Loaded,
    LoadFailed,
    NoEffect,
    Piece,
    ReplyDone,
)
from lora_tui.engine.scaled import ScaledOrigin
from lora_tui.engine.types import (
    AdapterInfo,
    GenerationSettings,
    MemoryBreakdown,
    Message,
    ReplyEnd,
    ReplyStats,
    Sharing,
)

FIXED_MEMORY = MemorySample(
    rss_mib=1504.0, pss_mib=1093.0, uss_mib=902.0, anon_mib=640.0, file_mib=864.0
)
FAKE_WORKER, FAKE_LANE = 4241, 4242  # the processes the fake engine says things are in
PACKING_RANGES = ((2**40, 2**40 + 2**29),)  # where its worker says its packing put memory


def fixed_tool_memory(layout: ToolLayout) -> ToolMemory:
    """The whole tool (the app, the engine's worker and two lanes, multiprocessing's tracker)
    with each adapter the layout names holding its own KV cache and LoRA weights. Its total
    is the same for any layout (the runtime takes the rest), so a snapshot's RSS history is
    flat however many samples it took."""
    names = [h.name for h in layout.holdings if h.name != PACKING]
    own = [(n, Share(96.0, 96.0) if n == "base" else Share(114.7, 114.7)) for n in names]
    held = sum((share for _, share in own), Share())
    return ToolMemory(
        foundation_file=Share(4.2, 1.4),
        packed_weights=Share(1602.0, 534.0),
        runtime=Share(1072.0 - held.rss_mib, 696.0 - held.pss_mib),
        adapters=tuple(own),
        other_programs=Share(12.0, 12.0),
        app=Share(62.0, 48.0),
        helpers=Share(13.0, 7.0),
        processes=5,
    )


FIXED_STATS = ReplyStats(
    prompt_tokens=31,
    reused_tokens=0,
    new_tokens=12,
    ttft_s=0.21,
    prefill_tok_s=142.0,
    decode_tok_s=26.4,
)
REPLIES = {
    "nobel": "The 2024 Nobel Prize in Physics went to **John Hopfield** and **Geoffrey Hinton**.",
    "executorch": "A `.pte` file is an ExecuTorch *program*; a `.ptd` file holds its weights.",
}
DEFAULT_REPLY = "I am a tiny model, and this is my **fixed** answer."
# A reasoning model (name "qwen3…"): it thinks first when thinking is on, as Qwen3 does.
THINKING_REPLY = (
    "<think>The user asks for a capital. France's is Paris; answer in one line.</think>\n\n"
    "The capital of France is **Paris**."
)
PLAIN_REPLY = "The capital of France is **Paris**."


class FakeEngine:
    def __init__(
        self,
        on_event: Callable[[EngineEvent], None],
        *,
        hold: bool = False,
        fail: dict[str, str] | None = None,
        slow_loads: bool = False,
        late: Collection[str] = (),
        foundation: str = "foundation.ptd",
        foundation_mib: float = 513.4,
        quantization: str | None = None,
        replies: Mapping[str, str] | None = None,
        no_effect: Mapping[str, tuple[str, float]] | None = None,
        threads_note: str | None = None,
    ) -> None:
        """``foundation``, ``foundation_mib`` and ``quantization``: what it runs over (its
        programs' quantization is "8da4w g32" for names starting "q-" unless given).
        ``replies``: adapter name -> its answer, over the fixed ``REPLIES``. ``no_effect``:
        adapter name -> (base, largest logit change): its load is followed by ``NoEffect``.
        ``threads_note``: what its ``EngineReady`` says of threads that cannot follow the work."""
        self.on_event = on_event
        self.foundation, self.quantization = foundation, quantization
        self.hold = hold
        self.replies = {**REPLIES, **(replies or {})}
        self.fail = fail or {}
        self.no_effect = no_effect or {}
        self.slow_loads = slow_loads  # loads wait for finish_loads()
        self.late = frozenset(late)  # these adapters' loads wait for finish_loads()
        self.waiting: list[tuple[Path, str]] = []
        self.calls: list[tuple] = []
        self.running: dict[str, str] = {}
        self.sent_settings: list[tuple[tuple[str, ...], GenerationSettings]] = []
        self.conversations: dict[str, list[Message]] = {}  # the last each adapter was sent
        self.loaded = 0
        self.names: list[str] = []  # loaded, in order
        self.base: str | None = None  # what replies are scored against (``Departure``)
        on_event(
            EngineReady(
                Sharing(True, "XNNPACK weight cache on (confirmed)"),
                371.0,
                foundation,
                foundation_mib,
                threads_note,
            )
        )
        on_event(FoundationPacked(foundation, FAKE_WORKER, PACKING_RANGES))

    def load(self, path: Path, name: str | None = None) -> None:
        name = name or path.stem
        self.calls.append(("load", str(path), name))
        if self.slow_loads or name in self.late:
            self.waiting.append((path, name))
            return
        self._finish_load(path, name)

    def finish_loads(self) -> None:
        waiting, self.waiting = self.waiting, []
        self.slow_loads, self.late = False, frozenset()
        for path, name in waiting:
            self._finish_load(path, name)

    def _finish_load(self, path: Path, name: str) -> None:
        if name in self.fail:
            self.on_event(LoadFailed(name, str(path), self.fail[name]))
            return
        self.loaded += 1
        self.names.append(name)
        if name == "base" and self.base is None:
            self.base = name
        # RSS counts the foundation's mapped pages once per program; PSS splits them.
        increment = 663.0 if self.loaded == 1 else 156.0
        true_increment = 556.0 if self.loaded == 1 else 46.0
        before = 371.0 + (self.loaded - 1) * 156.0 + (507.0 if self.loaded > 1 else 0.0)
        pss_before = 330.0 + (self.loaded - 1) * 46.0 + (510.0 if self.loaded > 1 else 0.0)
        known = not name.startswith("llm")  # "llm…": a program with no manifest entry
        self.on_event(
            Loaded(
                name,
                AdapterInfo(
                    name=name,
                    path=str(path),
                    kind=("base" if name == "base" else "adapter") if known else "program",
                    rank=(None if name == "base" else 16) if known else None,
                    target_modules=(() if name == "base" else tuple(PROJECTIONS))
                    if known
                    else None,
                    check_s=1.9,
                    load_s=0.7,
                    rss_before_mib=before,
                    rss_after_mib=before + increment,
                    pss_before_mib=pss_before,
                    pss_after_mib=pss_before + true_increment,
                    uss_after_mib=None,
                    anon_increment_mib=44.0,
                    breakdown=MemoryBreakdown(
                        (0.0 if name == "base" else 18.7) if known else None,
                        11.3 if known else None,
                        19.3,
                    ),
                    can_think=name.startswith("qwen3"),
                    quantization=self.quantization
                    or ("8da4w g32" if name.startswith("q-") else None),
                    foundation=self.foundation,
                    # A scaled copy's, as the engine reads it from beside the copy.
                    scale=origin.scale if (origin := ScaledOrigin.beside(path)) else None,
                    process=FAKE_LANE,
                    ranges=((self.loaded << 32, (self.loaded << 32) + 2**27),),
                ),
            )
        )
        if name in self.no_effect:  # as the engine's load probe finds it
            self.on_event(NoEffect(name, *self.no_effect[name]))

    def unload(self, name: str) -> None:
        self.calls.append(("unload", name))

    def send(
        self, conversations: Mapping[str, Sequence[Message]], settings: GenerationSettings
    ) -> None:
        """Records ("send", names, the prompt they answer) and answers at once."""
        prompts = {messages[-1].content for messages in conversations.values()}
        assert len(prompts) == 1, "one send answers one prompt"
        self.calls.append(("send", tuple(conversations), prompts.pop()))
        self.conversations.update({n: list(m) for n, m in conversations.items()})
        self._answer(list(conversations), settings)

    def _answer(self, names: list[str], settings: GenerationSettings) -> None:
        self.last_settings = settings
        self.sent_settings.append((tuple(names), settings))
        for name in names:
            reply = self.replies.get(name, DEFAULT_REPLY)
            if name.startswith("qwen3"):
                reply = THINKING_REPLY if settings.thinking else PLAIN_REPLY
            if settings.temperature > 0:  # sampled: the seed decides, as in the real engine
                reply += f" (sampled with seed {settings.seed})"
            words = reply.split(" ")
            shown = words[: len(words) // 2] if self.hold else words
            pieces = [w if i == 0 else " " + w for i, w in enumerate(shown)]
            for piece in pieces:
                self.on_event(Piece(name, piece))
            if self.hold:
                self.running[name] = "".join(pieces)
            else:
                self.on_event(ReplyDone(name, reply, ReplyEnd.STOP, FIXED_STATS))
                self._depart(name, reply, settings)

    def _depart(self, name: str, reply: str, settings: GenerationSettings) -> None:
        """Score the reply against the base, word by word as the real engine does token by
        token: a word the base's reply has at the same place is likely (log-probability
        -0.1), any other unlikely (-4.0 after the first, -7.5 for the first)."""
        if self.base is None or name == self.base or self.base not in self.names:
            return
        base_words = self._pieces(self.replies.get(self.base, DEFAULT_REPLY))
        pieces = self._pieces(reply)
        same = [i < len(base_words) and p == base_words[i] for i, p in enumerate(pieces)]
        departs = next((i for i, s in enumerate(same) if not s), None)
        logprobs = [-0.1 if s else (-7.5 if i == departs else -4.0) for i, s in enumerate(same)]
        choice = base_words[departs] if departs is not None and departs < len(base_words) else ""
        self.on_event(
            Departure(
                name,
                self.base,
                tuple(pieces),
                tuple(logprobs),
                departs,
                choice,
                departs is None and len(pieces) == len(base_words),
            )
        )

    @staticmethod
    def _pieces(reply: str) -> list[str]:
        return [w if i == 0 else " " + w for i, w in enumerate(reply.split(" "))]

    def cancel(self, names: list[str] | None = None) -> None:
        self.calls.append(("cancel", names))
        for name in list(self.running):
            if names is None or name in names:
                self.on_event(
                    ReplyDone(name, self.running.pop(name), ReplyEnd.CANCELLED, FIXED_STATS)
                )

    def clear(self, names: list[str] | None = None) -> None:
        self.calls.append(("clear", names))
        self.cancel(names)

    def use_base(self, name: str) -> None:
        self.calls.append(("use_base", name))
        self.base = name

    def memory(self) -> MemorySample:
        return FIXED_MEMORY

    def close(self) -> None:
        self.calls.append(("close",))
