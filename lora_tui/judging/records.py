"""A results line as a typed record: an answer (``AnswerRecord``) or a blind vote
(``VoteRecord``). Whatever writes a line builds one and writes its ``to_json``; whatever
reads one gets it from ``from_json``, which refuses a value that is not a results line (a
field missing or of the wrong type, judged by the fields' own types). Keys a record does
not know are left out, so a line from a newer version still reads.

Every field is written, null when unset: an answer the app gave has no ``group``, one
``eval`` gave no ``round``. Lines from before a field existed read with it unset. The CSV
export's columns are the answer's fields, its settings spread into their own columns."""

from __future__ import annotations

import functools
import json
import types
import typing
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import AdapterInfo, GenerationSettings, ReplyEnd

VOTE = "vote"  # the ``type`` of a vote line; an answer line has none


class NotARecord(ValueError):
    """A JSON value that is not a results line."""


@dataclass(frozen=True, kw_only=True)
class AnswerRecord:
    """One answer: the prompt, the reply, its speed and settings, how it scored (a prompt
    set's), and what it ran over. The results file stamps ``time`` and the program."""

    time: str | None = None
    round: str | None = None  # the app's round (its blind vote names the same)
    prompt: str
    adapter: str
    vote: str | None = None  # an export's: win, loss, tie or all bad, from the round's vote
    answer: str
    end: ReplyEnd
    ttft_s: float | None = None
    decode_tok_s: float | None = None
    new_tokens: int = 0
    settings: dict[str, Any] | None = None  # a GenerationSettings, as it was sent
    group: str | None = None  # a prompt set's answers: the prompt's group and fact,
    fact: str | None = None
    right: bool | None = None  # its mark (None: the prompt checks nothing)
    note: str | None = None  # and why the mark may be wrong (a regex out of time)
    quantization: str | None = None
    scale: float | None = None  # the adapter's LoRA strength, when not as trained (None: 1)
    foundation: str | None = None  # the foundation file it ran over
    program: str | None = None
    program_sha256: str | None = None
    foundation_sha256: str | None = None  # eval's: what --resume knows a run by
    tokenizer_sha256: str | None = None
    # eval's, with a base program open: the answer scored under the base (``Departure``):
    # the index of its first token that is not the base's greedy choice, whether it is the
    # base's greedy answer token for token, and the mean base log-probability of its tokens.
    departs_at: int | None = None
    same_as_base: bool | None = None
    base_logprob: float | None = None

    @classmethod
    def reply(
        cls,
        prompt: str,
        adapter: str,
        done: ReplyDone,
        settings: GenerationSettings,
        info: AdapterInfo | None = None,
        **scored: Any,
    ) -> AnswerRecord:
        """A reply as its line: ``info`` says which foundation it ran over; ``scored`` are
        the other fields that are known (``round``, a prompt set's ``group``, ``right``...)."""
        stats = done.stats
        return cls(
            prompt=prompt,
            adapter=adapter,
            answer=done.text,
            end=done.end,
            ttft_s=round(stats.ttft_s, 3) if stats else None,
            decode_tok_s=round(stats.decode_tok_s, 2) if stats else None,
            new_tokens=stats.new_tokens if stats else 0,
            settings=asdict(settings),
            foundation=info.foundation if info else None,
            quantization=info.quantization if info else None,
            scale=info.scale if info else None,
            **scored,
        )

    def key(self) -> AnswerKey:
        return AnswerKey.of(
            self.prompt,
            self.program_sha256,
            self.foundation_sha256,
            self.tokenizer_sha256,
            self.settings,
        )

    def to_json(self) -> dict[str, Any]:
        line = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**line, "end": str(self.end)}


@dataclass(frozen=True)
class AnswerKey:
    """What makes two answer lines the same answer: the prompt, the SHA-256 of the program,
    of the foundation and of the tokenizer, and the settings (``eval --resume`` skips an
    answer whose key the file has). Lines without the last two hashes (the app's, older
    runs') match no run that has them, so their answers are asked again."""

    prompt: str
    program_sha256: str | None
    foundation_sha256: str | None
    tokenizer_sha256: str | None
    settings: str  # as sorted JSON: the same settings in any order are the same

    @classmethod
    def of(
        cls,
        prompt: str,
        program_sha256: str | None,
        foundation_sha256: str | None,
        tokenizer_sha256: str | None,
        settings: dict[str, Any] | None,
    ) -> AnswerKey:
        hashes = (program_sha256, foundation_sha256, tokenizer_sha256)
        return cls(prompt, *hashes, json.dumps(settings, sort_keys=True))


@dataclass(frozen=True, kw_only=True)
class VoteRecord:
    """A blind vote: ``verdict`` is the winner's name, ``TIE`` or ``ALL_BAD``; ``adapters``
    are the panes in the order they were shown."""

    time: str | None = None
    round: str
    prompt: str | None = None
    adapters: tuple[str, ...]
    verdict: str

    def to_json(self) -> dict[str, Any]:
        line = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"type": VOTE, **line, "adapters": list(self.adapters)}


Record = AnswerRecord | VoteRecord


def from_json(value: Any) -> Record:
    """The record a results line holds; ``NotARecord`` when it holds none: a vote has its
    round, the panes shown and the verdict, an answer its prompt, adapter, answer and how
    it ended, and every field it has is of its type."""
    if not isinstance(value, dict):
        raise NotARecord("not a JSON object")
    kind = value.get("type")
    if kind not in (None, VOTE):
        raise NotARecord(f"a line of type {kind!r}")
    cls: type[Record] = VoteRecord if kind == VOTE else AnswerRecord
    known: dict[str, Any] = {}
    for name, hint in _hints(cls).items():
        if name in value:
            if not _is_a(hint, value[name]):
                raise NotARecord(f"{name} is not {hint}")
            known[name] = _from_json(hint, value[name])
    try:
        return cls(**known)
    except TypeError:  # a field it must have is missing
        raise NotARecord(f"not every field of {cls.__name__}") from None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_json(hint: Any, value: Any) -> Any:
    """A field's value from its JSON: a list as a tuple, a string as its enum's member."""
    if typing.get_origin(hint) is tuple:
        return tuple(value)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return hint(value)
    return value


def _is_a(hint: Any, value: Any) -> bool:
    """Whether a JSON value is of a field's type (an int is a float too, a bool is not an
    int; a tuple of str is a list of str)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_is_a(arg, value) for arg in args)
    if hint is type(None):
        return value is None
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return isinstance(value, str) and value in {member.value for member in hint}
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is dict:
        return isinstance(value, dict)
    if origin is tuple:
        return isinstance(value, list) and all(isinstance(item, args[0]) for item in value)
    return isinstance(value, hint)


def _columns() -> list[str]:
    settings = [f.name for f in fields(GenerationSettings)]
    names = [f.name for f in fields(AnswerRecord)]
    return [column for name in names for column in (settings if name == "settings" else [name])]


CSV_COLUMNS = _columns()  # every field of an answer, its settings spread out
