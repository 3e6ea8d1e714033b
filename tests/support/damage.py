"""Damaged copies of a program, as a bad download or a disk error leaves them.

Bytes flipped in the program's flatbuffer, in an XNNPACK delegate blob or in the
named-data segment (the LoRA weights), with the header and length intact so that only
loading can tell; or the file cut short inside a segment. Seeded, so a failure can be
replayed.
"""

from __future__ import annotations

import queue
import random
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from lora_tui.engine import (
    EngineFailed,
    GenerationSettings,
    Loaded,
    LoadFailed,
    Message,
    ReplyDone,
)
from lora_tui.engine.worker import EngineProcess

KINDS = ("flatbuffer", "delegate", "named-data", "cut")
_HEADER_END = 40  # the extended header stays intact, so header checks pass
_XNN_MAGIC = b"XH00"  # at offset 4 of each XNNPACK delegate blob


@dataclass(frozen=True)
class Regions:
    flatbuffer: range
    delegates: list[range]
    named_data: range
    segments: range


def regions(program: bytes) -> Regions:
    program_size, segment_base, segment_size = struct.unpack_from("<QQQ", program, 16)
    delegates = []
    start = program.find(_XNN_MAGIC, segment_base)
    while start != -1:
        blob = start - 4
        constant_offset, constant_size = struct.unpack_from("<IQ", program, blob + 18)
        delegates.append(range(blob, blob + constant_offset + constant_size))
        start = program.find(_XNN_MAGIC, delegates[-1].stop)
    end = segment_base + segment_size
    named_start = max((r.stop for r in delegates), default=segment_base)
    return Regions(
        flatbuffer=range(_HEADER_END, program_size),
        delegates=delegates,
        named_data=range(named_start, end),
        segments=range(segment_base, end),
    )


def damage(program: bytes, kind: str, rng: random.Random, flips: int = 8) -> bytes:
    """One damaged copy of ``program``."""
    where = regions(program)
    if kind == "cut":
        return program[: rng.randrange(where.segments.start + 1, where.segments.stop)]
    if kind == "flatbuffer":
        spots = where.flatbuffer
    elif kind == "delegate":
        spots = rng.choice(where.delegates)
    elif kind == "named-data":
        spots = where.named_data
    else:
        raise ValueError(kind)
    data = bytearray(program)
    for _ in range(flips):
        offset = rng.randrange(spots.start, spots.stop)
        data[offset] ^= 1 << rng.randrange(8)
    return bytes(data)


@dataclass(frozen=True)
class Outcome:
    verdict: str  # "rejected", "crashed a child", "loaded", "took down healthy" or "hung"
    detail: str


HEALTHY = ("healthy-1", "healthy-2")
DAMAGED = "damaged"
LOAD_TIMEOUT_S = 300.0
REPLY_TIMEOUT_S = 120.0


class FuzzEngine:
    """The app's engine process holding two healthy programs, tried with one damaged program
    at a time: does the damaged one fail alone, and do the healthy ones still answer?"""

    def __init__(
        self, weights: Path, healthy: list[Path], tokenizer: Path | None, log: Path
    ) -> None:
        self.weights, self.healthy, self.tokenizer, self.log = weights, healthy, tokenizer, log
        self.events: queue.Queue = queue.Queue()
        self.engine: EngineProcess | None = None

    def __enter__(self) -> FuzzEngine:
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.engine is not None:
            self.engine.close()

    def _start(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self.events = queue.Queue()
        self.engine = EngineProcess(
            self.weights, self.events.put, tokenizer=self.tokenizer, log_path=self.log
        )
        for name, path in zip(HEALTHY, self.healthy, strict=True):
            self.engine.load(path, name)
        for name in HEALTHY:
            event = self._wait(lambda e, n=name: getattr(e, "adapter", None) == n, LOAD_TIMEOUT_S)
            if not isinstance(event, Loaded):
                raise RuntimeError(f"a healthy program did not load: {event}")

    def _wait(self, wanted, timeout: float):
        """The first event ``wanted`` accepts, an EngineFailed, or None on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(event, EngineFailed) or wanted(event):
                return event
        return None

    def try_program(self, path: Path) -> Outcome:
        assert self.engine is not None
        self.engine.load(path, DAMAGED)
        loaded = self._wait(lambda e: getattr(e, "adapter", None) == DAMAGED, LOAD_TIMEOUT_S)
        if loaded is None:
            self._start()
            return Outcome("hung", f"no answer to the load in {LOAD_TIMEOUT_S:.0f} s")
        if isinstance(loaded, EngineFailed):
            self._start()
            return Outcome("took down healthy", loaded.error)
        if isinstance(loaded, LoadFailed):
            verdict = (
                "crashed a child" if "crashed the program check" in loaded.error else "rejected"
            )
            outcome = Outcome(verdict, loaded.error)
        else:
            outcome = Outcome("loaded", "loaded and ran: the flips changed no structure")
        asked = [*HEALTHY, DAMAGED] if isinstance(loaded, Loaded) else list(HEALTHY)
        hello = [Message("user", "Hello")]
        self.engine.send({n: hello for n in asked}, GenerationSettings(max_new_tokens=4))
        replies = {}
        while len(replies) < len(asked):
            event = self._wait(lambda e: isinstance(e, ReplyDone), REPLY_TIMEOUT_S)
            if event is None or isinstance(event, EngineFailed):
                self._start()
                what = "no reply" if event is None else event.error
                return Outcome("took down healthy", what)
            replies[event.adapter] = event
        failed = [n for n in HEALTHY if replies[n].error is not None]
        if failed:
            return Outcome("took down healthy", replies[failed[0]].error or "")
        self.engine.clear(None)
        if isinstance(loaded, Loaded):
            self.engine.unload(DAMAGED)
        return outcome
