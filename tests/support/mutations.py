"""Mutated copies of the files that are not programs, as a stranger's download has them:
JSON configs and manifests, JSON Lines prompt sets and results files, GGUF headers.

Structure-aware mutations change one thing a reader looks at (a key dropped or given
twice, a value of the wrong type, a negative, zero or huge number, NaN, a deep nest, a very
long string, markup and escape sequences, a catastrophic regex where a regex is read, a
Jinja template that loops for ever where a template is read); byte-level ones flip bits,
cut the file or splice in junk. Each returns the new bytes and a one-line description, and
is seeded by the ``random.Random`` it is given, so a case can be replayed.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Callable
from typing import Any

Mutated = tuple[bytes, str]
JsonPath = tuple[Any, ...]  # keys and indices from the document's root

MARKUP = [
    "[/]",
    "[/INST]",
    "support[lr=1e-4]",
    "[bold red]x[/bold red]",
    "[link=file:///etc/passwd]x[/link]",
    "\x1b[2J\x1b[31mred",
    "\x1b]0;title\x07",
    "a\rb\x08c",
    "nul\x00byte",
    "\u202eevil",
]
CATASTROPHIC_REGEXES = ["(.*.*.*)*Z", "(.*.*)*X", "(a+)+$", "(x+x+)+y", "((a|a)*)*b"]
BAD_REGEXES = ["(", "[", "*", "a{4294967296}", "(?P<x>a)(?P<x>b)", "(?<=a+)b"]
# Jinja templates a chat template field may hold: loops that never end in useful time,
# output too big to keep, recursion, errors of every kind a render can raise.
BAD_TEMPLATES = [
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% for m in messages %}{% for i in range(100000) %}{{ messages }}{% endfor %}{% endfor %}",
    "{{ 'x' * 1000000000 }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ 1 / 0 }}",
    "{% for %}",
    "{{ raise_exception('[/]') }}",
    "{{ messages.__class__.__mro__ }}",
    "{{ messages[0]['content'] | replace('', 'x' * 100000) }}",
    "{% set ns = namespace(x='a') %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}"
    "{% endfor %}{{ ns.x }}",
    "[/]{{ messages[0]['content'] }}[bold]",
]
HUGE_INTS = [2**31, 2**63, 2**64 + 1, 10**30, 200000000, 65536]
LONG = "A" * 1_000_000
DEEP = "[" * 100_000 + "]" * 100_000


class Raw(str):
    """JSON text written as it is (a nest too deep for ``json.dumps`` to write)."""


class Pairs(list):
    """A JSON object written from (key, value) pairs, so a key can be given twice."""


def dumps(value: Any) -> str:
    """JSON text of ``value``, with ``Raw`` and ``Pairs`` as they say; NaN and Infinity are
    written as Python's json writes them (and reads them back)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs | dict):
        pairs = value if isinstance(value, Pairs) else value.items()
        return "{" + ", ".join(f"{json.dumps(str(k))}: {dumps(v)}" for k, v in pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(item) for item in value) + "]"
    return json.dumps(value)


def odd_values(current: Any, rng: random.Random) -> list[Any]:
    """Values of the wrong type or range for a field that holds ``current`` (never
    ``current`` itself)."""
    values: list[Any] = [None, True, "", "x", [], {}, [current], {"k": current}, 0, -1]
    values += [rng.choice(HUGE_INTS), -rng.choice(HUGE_INTS), 2.5, math.nan, math.inf, -math.inf]
    values += [rng.choice(MARKUP), LONG, Raw(DEEP)]
    if isinstance(current, int | float) and not isinstance(current, bool):
        values += [str(current), -current, current * 10**6, str(math.nan)]
    if isinstance(current, str):
        values += [current * 1000, rng.choice(MARKUP) + current, 5]
    if isinstance(current, list):
        values += [current * 1000, current[:0], "not a list"]
    return [v for v in values if not same(v, current)]


def same(a: Any, b: Any) -> bool:
    """Whether a reader would see no change (True is not 1 here, as JSON tells them apart)."""
    return type(a) is type(b) and dumps(a) == dumps(b)


def paths(value: Any, prefix: JsonPath = ()) -> list[JsonPath]:
    """Every key and index path in a JSON document, root excluded."""
    found: list[JsonPath] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return found
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def get(value: Any, path: JsonPath) -> Any:
    for key in path:
        value = value[key]
    return value


def _get_or_none(value: Any, path: JsonPath) -> Any:
    try:
        return get(value, path)
    except (KeyError, IndexError, TypeError):
        return None


def put(value: Any, path: JsonPath, new: Any) -> None:
    """Set ``path`` to ``new``, making the objects on the way as needed."""
    for key in path[:-1]:
        if isinstance(value, dict) and not isinstance(value.get(key), dict | list):
            value[key] = {}
        value = value[key]
    if isinstance(value, list) and isinstance(path[-1], int):
        if path[-1] < len(value):
            value[path[-1]] = new
        else:
            value.append(new)
    else:
        value[path[-1]] = new


def short(value: Any, limit: int = 60) -> str:
    text = str(value) if isinstance(value, Raw) else repr(value)
    return text if len(text) <= limit else f"{text[: limit - 12]}… ({len(text)} chars)"


def where(path: JsonPath) -> str:
    return ".".join(str(k) for k in path) or "(root)"


# --- JSON documents ----------------------------------------------------------------------


Targets = list[tuple[JsonPath, list[Any]]]  # fields a reader looks at, and values to try there


def targeted(targets: Targets, pick: int) -> tuple[JsonPath, Any]:
    """The ``pick``-th (field, value) of ``targets``: the fields take turns, each going
    through its values in order, so a run of N picks tries N different things, the first
    value of every field (the one that matters most) before any second one."""
    path, values = targets[pick % len(targets)]
    return path, values[(pick // len(targets)) % len(values)]


def mutate_json(
    doc: Any, rng: random.Random, targets: Targets, pick: int | None = None
) -> tuple[Any, str]:
    """One structure-aware change to a copy of ``doc``: the ``pick``-th targeted value, or
    at random a targeted field given an odd value or any field dropped, duplicated or
    retyped."""
    doc = json.loads(json.dumps(doc))
    if pick is not None and targets:
        path, new = targeted(targets, pick)
        put(doc, path, new)
        return doc, f"{where(path)} = {short(new)}"
    every = paths(doc)
    operation = rng.choice(["target", "target", "retype", "drop", "duplicate"])
    if operation == "target" and targets:
        path, values = rng.choice(targets)
        current = _get_or_none(doc, path)
        new = rng.choice([v for v in values if not same(v, current)] or [Raw(DEEP)])
        put(doc, path, new)
        return doc, f"{where(path)} = {short(new)}"
    if not every:
        return Raw(DEEP), "the whole document a deep nest"
    path = rng.choice(every)
    parent = get(doc, path[:-1])
    if operation == "drop":
        del parent[path[-1]]
        return doc, f"drop {where(path)}"
    if operation == "duplicate" and isinstance(parent, dict):
        again = rng.choice([parent[path[-1]], *odd_values(parent[path[-1]], rng)])
        pairs = Pairs([*parent.items(), (path[-1], again)])
        if path[:-1]:
            put(doc, path[:-1], pairs)
        else:
            doc = pairs
        return doc, f"{where(path)} given twice, the second {short(again)}"
    new = rng.choice(odd_values(parent[path[-1]], rng))
    parent[path[-1]] = new
    return doc, f"{where(path)} = {short(new)}"


def mutate_bytes(data: bytes, rng: random.Random, within: int | None = None) -> Mutated:
    """Bits flipped, the file cut short, or junk spliced in (in the first ``within`` bytes)."""
    span = max(1, min(len(data), within or len(data)))
    operation = rng.choice(["flip", "flip", "cut", "junk"])
    if operation == "cut":
        at = rng.randrange(span)
        return data[:at], f"cut at byte {at} of {len(data)}"
    if operation == "junk":
        at = rng.randrange(span)
        junk = rng.choice(
            [b"\xff\xfe\x00", b"\x1b[2J[/]", bytes(rng.randrange(256) for _ in range(16))]
        )
        return data[:at] + junk + data[at:], f"{junk!r} spliced in at byte {at}"
    out = bytearray(data)
    flips = rng.randint(1, 8)
    for _ in range(flips):
        out[rng.randrange(span)] ^= 1 << rng.randrange(8)
    return bytes(out), f"{flips} bits flipped" + (f" in the first {span} bytes" if within else "")


def mutate_json_file(
    data: bytes, rng: random.Random, targets: Targets, pick: int | None = None
) -> Mutated:
    """The ``pick``-th targeted value; else structure-aware three times in four, else
    byte-level."""
    if pick is None and rng.random() < 0.25:
        return mutate_bytes(data, rng)
    doc, what = mutate_json(json.loads(data), rng, targets, pick)
    return dumps(doc).encode("utf-8"), what


# --- JSON Lines ----------------------------------------------------------------------------


def mutate_jsonl(
    data: bytes, rng: random.Random, targets: Targets, pick: int | None = None
) -> Mutated:
    """A line's object changed (as ``mutate_json``, the ``pick``-th targeted value if
    given), or the lines themselves: dropped, repeated, glued, cut, not JSON, not an
    object, not UTF-8; or the bytes."""
    lines = data.decode("utf-8").splitlines()
    index = rng.randrange(len(lines))
    operation = (
        "object" if pick is not None else rng.choice(["object"] * 4 + ["lines"] * 2 + ["bytes"])
    )
    if operation == "bytes":
        return mutate_bytes(data, rng)
    if operation == "object":
        row, what = mutate_json(json.loads(lines[index]), rng, targets, pick)
        lines[index] = dumps(row).replace("\n", "\\n")
        return ("\n".join(lines) + "\n").encode("utf-8"), f"line {index + 1}: {what}"
    line, after = lines[index], lines[index + 1 :]
    before, number = lines[:index], f"line {index + 1}"
    changes: dict[str, Callable[[], tuple[list[str], str]]] = {
        "drop": lambda: ([*before, *after], f"{number} dropped"),
        "repeat": lambda: ([*before, line, line, line, *after], f"{number} three times"),
        "blank": lambda: ([*before, "   ", line, *after], f"a blank line before {number}"),
        "not json": lambda: ([*before, "{not json", line, *after], f"not JSON before {number}"),
        "not object": lambda: (
            [*before, rng.choice(["[1]", "5", '"x"', "null"]), line, *after],
            f"a line that is no object before {number}",
        ),
        "half": lambda: ([*before, line[: len(line) // 2]], f"cut in the middle of {number}"),
        "glued": lambda: (
            [*before, line + lines[(index + 1) % len(lines)], *after],
            f"{number} glued to a copy of the next",
        ),
        "long": lambda: (
            [*before, json.dumps({"prompt": LONG}), line, *after],
            f"a line of a million characters before {number}",
        ),
    }
    name = rng.choice(sorted(changes))
    new_lines, what = changes[name]()
    text = "\n".join(new_lines) + ("" if name == "half" else "\n")
    if rng.random() < 0.2:
        text = "\ufeff" + text.replace("\n", "\r\n")
        what += ", with a BOM and CRLF"
    return text.encode("utf-8"), what


# --- GGUF ------------------------------------------------------------------------------------

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class GgufField:
    """A number in a GGUF header, where it is and what it is."""

    def __init__(self, offset: int, fmt: str, role: str) -> None:
        self.offset, self.fmt, self.role = offset, fmt, role


def gguf_fields(data: bytes) -> tuple[list[GgufField], list[tuple[int, int, str]], int]:
    """(the numbers of the header: counts, lengths, values, tensor dims and offsets; the
    strings as (offset, length, key); where the header ends)."""
    fields = [GgufField(8, "<Q", "tensor count"), GgufField(16, "<Q", "metadata count")]
    strings: list[tuple[int, int, str]] = []
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    pos = 24

    def string(role: str, record: bool = True) -> str:
        nonlocal pos
        (length,) = struct.unpack_from("<Q", data, pos)
        if record:
            fields.append(GgufField(pos, "<Q", f"length of {role}"))
            strings.append((pos + 8, length, role))
        text = data[pos + 8 : pos + 8 + length].decode("utf-8", "replace")
        pos += 8 + length
        return text

    def value(kind: int, key: str, top: bool) -> None:
        nonlocal pos
        if kind == _STRING:
            string(key, top)
        elif kind == _ARRAY:
            item_kind, count = struct.unpack_from("<IQ", data, pos)
            fields.append(GgufField(pos, "<I", f"item type of {key}"))
            fields.append(GgufField(pos + 4, "<Q", f"length of {key}"))
            pos += 12
            for _ in range(count):
                value(item_kind, key, False)
        else:
            fmt = _SCALARS[kind]
            if top:
                fields.append(GgufField(pos, fmt, key))
            pos += struct.calcsize(fmt)

    for _ in range(n_kv):
        key = string("a key")
        fields.append(GgufField(pos, "<I", f"type of {key}"))
        (kind,) = struct.unpack_from("<I", data, pos)
        pos += 4
        value(kind, key, True)
    for _ in range(n_tensors):
        name = string("a tensor name")
        (n_dims,) = struct.unpack_from("<I", data, pos)
        fields.append(GgufField(pos, "<I", f"dimensions of {name}"))
        pos += 4
        fields += [GgufField(pos + 8 * d, "<Q", f"dim {d} of {name}") for d in range(n_dims)]
        pos += 8 * n_dims
        fields += [
            GgufField(pos, "<I", f"type of {name}"),
            GgufField(pos + 4, "<Q", f"offset of {name}"),
        ]
        pos += 12
    return fields, strings, pos


# The header values a reader sizes things by: a model's shape, and the counts of the file.
_SHAPE_WORDS = (
    "block_count",
    "head_count",
    "embedding_length",
    "feed_forward_length",
    "context_length",
    "key_length",
    "value_length",
    "dimension_count",
    "vocab_size",
    "count",
    "length of",
    "dim ",
)


def _odd_number(fmt: str, rng: random.Random) -> Any:
    if fmt in ("<f", "<d"):
        return rng.choice([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e30])
    if fmt == "<?":
        return rng.choice([True, False])
    bits = struct.calcsize(fmt) * 8
    if fmt.islower():  # signed
        return rng.choice(
            [0, -1, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, 200000000 % 2 ** (bits - 1)]
        )
    return rng.choice(
        [0, 1, 2**bits - 1, 2 ** (bits - 1), min(200000000, 2**bits - 1), rng.randrange(2**bits)]
    )


# The header numbers a reader sizes its work by, and a value to try in each, in turn.
GGUF_TARGETS = [
    (".block_count", 200000000),
    (".attention.head_count", 0),
    (".embedding_length", 0),
    (".attention.head_count_kv", 0),
    (".feed_forward_length", 2**31 - 1),
    (".context_length", 0),
    (".attention.key_length", 0),
    (".vocab_size", 2**32 - 1),
    ("length of tokenizer.ggml.tokens", 2**62),
    ("tensor count", 2**62),
    ("metadata count", 2**62),
    (".block_count", 0),
    (".attention.head_count", 3),
    (".embedding_length", 2**31),
]


def mutate_gguf(data: bytes, rng: random.Random, pick: int | None = None) -> Mutated:
    """The ``pick``-th targeted header number; else one header number set to an odd value
    (a shape field twice as often), a string's bytes turned to markup or invalid UTF-8, or
    bits flipped or the file cut in the header."""
    fields, strings, header_end = gguf_fields(data)
    if pick is not None:
        role, new = GGUF_TARGETS[pick % len(GGUF_TARGETS)]
        field = next(f for f in fields if f.role.endswith(role) and "type of" not in f.role)
        out = bytearray(data)
        struct.pack_into(field.fmt, out, field.offset, new)
        return bytes(out), f"{field.role} = {new!r}"
    operation = rng.choice(["shape", "shape", "number", "string", "bytes"])
    if operation == "bytes":
        return mutate_bytes(data, rng, within=header_end)
    if operation == "string":
        offset, length, role = rng.choice([s for s in strings if s[1] > 0])
        junk = rng.choice([m.encode() for m in MARKUP] + [b"\xff\xfe\xfd"])
        new = (junk * (length // len(junk) + 1))[:length]
        return data[:offset] + new + data[
            offset + length :
        ], f"{role} {data[offset : offset + length][:30]!r} -> {new[:30]!r}"
    pool = (
        [f for f in fields if any(w in f.role for w in _SHAPE_WORDS)]
        if operation == "shape"
        else fields
    )
    field = rng.choice(pool or fields)
    new = _odd_number(field.fmt, rng)
    out = bytearray(data)
    struct.pack_into(field.fmt, out, field.offset, new)
    return bytes(out), f"{field.role} = {new!r}"
