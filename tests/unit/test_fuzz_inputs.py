"""The input fuzz's verdicts, from stand-in outputs of the commands it runs, and its
mutations: seeded, and each one a change a reader can see."""

from __future__ import annotations

import json
import random
import signal
import struct
import sys
import time
from pathlib import Path

import pytest

from benchmarks.fuzz_inputs import (
    HANDLED,
    HANG,
    LOGGED,
    NOT_ONE_LINE,
    OOM,
    REFUSED,
    TRACEBACK,
    Limits,
    Outcome,
    classify,
    failures,
    run_limited,
    signature,
)
from tests.support import mutations

PYTHON_TRACEBACK = """\
Traceback (most recent call last):
  File "/venv/bin/lora-tui", line 8, in <module>
    sys.exit(main())
             ^^^^^^
  File "/lora_tui/results.py", line 140, in read_results
    return [json.loads(line) for line in path.read_text().splitlines() if line]
            ^^^^^^^^^^^^^^^^
json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)
"""
CHAINED = """\
Traceback (most recent call last):
  File "a.py", line 1, in f
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "a.py", line 3, in g
rich.errors.MarkupError: closing tag '[/]' at position 0 has nothing to close
"""
RICH_TRACEBACK = """\
╭───────────────────── Traceback (most recent call last) ──────────────────────╮
│ /venv/lib/python3.11/site-packages/textual/widgets/_header.py:221 in set_title│
│ ❱ 221 │   │   │   │   self.query_one(HeaderTitle).update(self.format_title() │
╰──────────────────────────────────────────────────────────────────────────────╯
NoMatches: No nodes match 'HeaderTitle' on Header()
"""
MEMORY_TRACEBACK = PYTHON_TRACEBACK.replace(
    "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)", "MemoryError"
)


@pytest.mark.parametrize(
    ("returncode", "stdout", "stderr", "verdict", "detail"),
    [
        (None, "", "", HANG, "still running at the wall-clock limit"),
        (-signal.SIGXCPU, "", "", HANG, "stopped at the CPU-time limit"),
        (0, "lora-tui bench — weight sharing on\n│ full │ 12 MiB │\n", "", HANDLED, None),
        (1, "", "lora-tui bench: error: a.pte: not a program\n", REFUSED, None),
        (1, "", "", REFUSED, "exit 1, nothing said"),
        (
            1,
            "",
            PYTHON_TRACEBACK,
            TRACEBACK,
            "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        ),
        (
            1,
            "",
            CHAINED,
            TRACEBACK,
            "rich.errors.MarkupError: closing tag '[/]' at position 0 has nothing to close",
        ),
        (1, RICH_TRACEBACK, "", TRACEBACK, "NoMatches: No nodes match 'HeaderTitle' on Header()"),
        # Exit 0 does not hide a traceback (an error in a thread, or at exit).
        (0, "table\n", PYTHON_TRACEBACK, TRACEBACK, None),
        (0, "", "Exception ignored in: <function X.__del__>\n", TRACEBACK, None),
        (
            1,
            "",
            "lora-export: internal error: ZeroDivisionError: division by zero (details in l.log)\n",
            TRACEBACK,
            None,
        ),
        (1, "", "ValueError: 'x' is not a valid ReplyEnd\n", TRACEBACK, None),
        (-signal.SIGSEGV, "", "", TRACEBACK, "killed by SIGSEGV"),
        (1, "", MEMORY_TRACEBACK, OOM, "MemoryError"),
        (-signal.SIGABRT, "", "terminate called after throwing 'std::bad_alloc'\n", OOM, None),
        (-signal.SIGKILL, "", "", OOM, "killed by SIGKILL"),
    ],
)
def test_each_output_gets_its_verdict(
    returncode: int | None, stdout: str, stderr: str, verdict: str, detail: str | None
) -> None:
    got_verdict, got_detail = classify(returncode, stdout, stderr)
    assert got_verdict == verdict
    if detail is not None:
        assert got_detail == detail
    else:  # the detail quotes the line that says what happened
        assert got_detail and got_detail in stdout + stderr


def test_failures_are_told_apart_by_kind_command_and_error() -> None:
    def outcome(index: int, command: str, verdict: str, detail: str, lines: int = 1) -> Outcome:
        what = f"mutation {index}"
        return Outcome("results", index, command, what, verdict, detail, 1.0, 1.0, lines)

    expecting = "json.decoder.JSONDecodeError: Expecting value: line 1 column 4 (char 3)"
    found = failures(
        [
            outcome(0, "eval --resume", TRACEBACK, expecting),
            outcome(1, "eval --resume", TRACEBACK, expecting.replace("4 (char 3", "9 (char 8")),
            outcome(2, "eval --resume", TRACEBACK, "ValueError: 'x' is not a valid ReplyEnd"),
            outcome(3, "eval --resume", TRACEBACK, "ValueError: 5 is not a valid ReplyEnd"),
            outcome(4, "eval --resume", TRACEBACK, "ValueError: could not convert string"),
            outcome(5, "export results", TRACEBACK, expecting),
            outcome(6, "eval --resume", REFUSED, "lora-tui eval: error: bad"),
            outcome(7, "eval --resume", REFUSED, "lora-tui eval: error: bad", lines=3),
            outcome(8, "eval --resume", HANDLED, "table"),
            outcome(9, "eval --resume", HANG, "stopped at the CPU-time limit"),
        ]
    )
    summary = {(f["command"], f["verdict"], f["error"]): len(f["cases"]) for f in found}
    same_place = "json.decoder.JSONDecodeError: Expecting value: line … column … (char …)"
    assert summary == {
        ("eval --resume", TRACEBACK, same_place): 2,
        ("eval --resume", TRACEBACK, "ValueError: … is not a valid ReplyEnd"): 2,
        ("eval --resume", TRACEBACK, "ValueError: could not convert string"): 1,
        ("export results", TRACEBACK, same_place): 1,
        ("eval --resume", NOT_ONE_LINE, "3 lines on stderr"): 1,
        ("eval --resume", HANG, HANG): 1,
    }
    assert found[0]["cases"] == [
        {"case": 0, "mutation": "mutation 0", "detail": expecting},
        {
            "case": 1,
            "mutation": "mutation 1",
            "detail": expecting.replace("4 (char 3", "9 (char 8"),
        },
    ]


def test_an_internal_error_is_known_by_the_exception_its_log_holds() -> None:
    said = "lora-export: internal error: error: missing ) at position 7 (details in /t/l.log)"
    assert signature(TRACEBACK, f"{said}{LOGGED}re.error: missing ) at position 7") == (
        "re.error: missing ) at position …"
    )
    assert signature(TRACEBACK, said) == "error: missing ) at position …"


def test_a_command_that_outlives_its_limit_is_stopped_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 600 & echo $! > {pid_file}; sleep 600"
    run = run_limited(["sh", "-c", script], tmp_path, {}, Limits(60, 2**31, 3.0))
    assert run.returncode is None
    assert classify(run.returncode, run.stdout, run.stderr)[0] == HANG
    child = Path("/proc") / pid_file.read_text()
    deadline = time.monotonic() + 10
    while child.exists() and _state(child) != "Z" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not child.exists() or _state(child) == "Z"


def _state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_the_cpu_limit_stops_a_loop_that_would_run_for_ever(tmp_path: Path) -> None:
    code = "import re; re.search('(.*.*.*)*Z', 'a' * 40)"
    run = run_limited([sys.executable, "-c", code], tmp_path, {}, Limits(1, 2**31, 120.0))
    assert classify(run.returncode, run.stdout, run.stderr) == (
        HANG,
        "stopped at the CPU-time limit",
    )
    assert run.cpu_seconds >= 0.9


def test_the_memory_limit_turns_a_runaway_allocation_into_out_of_memory(tmp_path: Path) -> None:
    code = "b = bytearray(8 * 2**30)"
    run = run_limited([sys.executable, "-c", code], tmp_path, {}, Limits(60, 2 * 2**30, 60.0))
    assert classify(run.returncode, run.stdout, run.stderr) == (OOM, "MemoryError")


def test_mutations_are_seeded_and_change_the_file() -> None:
    healthy = json.dumps({"r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}).encode()
    targets = [(("r",), [0, -8, 65536])]
    for seed in range(30):
        first = mutations.mutate_json_file(healthy, random.Random(seed), targets)
        again = mutations.mutate_json_file(healthy, random.Random(seed), targets)
        assert first == again
        assert first[0] != healthy and first[1]


def test_a_duplicated_key_and_a_deep_nest_are_written_as_json_has_them() -> None:
    text = mutations.dumps(mutations.Pairs([("r", 8), ("r", mutations.Raw("[[[]]]"))]))
    assert text == '{"r": 8, "r": [[[]]]}'
    assert json.loads(text) == {"r": [[[]]]}
    assert mutations.dumps({"x": float("nan")}) == '{"x": NaN}'


def test_a_gguf_header_number_is_changed_in_place() -> None:
    key, value = b"llama.block_count", struct.pack("<I", 2)
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    header += struct.pack("<Q", len(key)) + key + struct.pack("<I", 4) + value
    fields, strings, end = mutations.gguf_fields(header)
    assert end == len(header)
    assert [f.role for f in fields][-1] == "llama.block_count"
    assert strings == [(32, len(key), "a key")]
    changed = {mutations.mutate_gguf(header, random.Random(seed))[1] for seed in range(40)}
    assert any(c.startswith("llama.block_count = ") for c in changed)


def test_a_jsonl_mutation_keeps_the_other_lines() -> None:
    lines = [json.dumps({"prompt": f"p{i}", "regex": "x"}) for i in range(3)]
    healthy = ("\n".join(lines) + "\n").encode()
    targets = [(("regex",), mutations.CATASTROPHIC_REGEXES)]
    for seed in range(30):
        data, what = mutations.mutate_jsonl(healthy, random.Random(seed), targets)
        assert data != healthy and what


def test_targeted_picks_try_every_field_first_value_first() -> None:
    targets = [(("r",), [0, -8]), (("lora_alpha",), ["nan", -1]), (("bias",), ["[/]"])]
    doc = {"r": 8, "lora_alpha": 16, "bias": "none"}
    made = [mutations.mutate_json(doc, random.Random(0), targets, pick)[1] for pick in range(6)]
    assert made == [
        "r = 0",
        "lora_alpha = 'nan'",
        "bias = '[/]'",
        "r = -8",
        "lora_alpha = -1",
        "bias = '[/]'",
    ]


def test_each_kind_runs_its_commands_on_targeted_and_random_cases_alike() -> None:
    from benchmarks.fuzz_kinds import KINDS

    for kind in KINDS.values():
        turns = [(kind.command_for(i), i % 2) for i in range(4 * len(kind.commands))]
        assert {(c, targeted) for c, targeted in turns} == {
            (c, t) for c in kind.commands for t in (0, 1)
        }
