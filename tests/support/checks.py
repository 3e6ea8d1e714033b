"""Assertions several tiers share."""

from __future__ import annotations

import re
import subprocess

# What a terminal would act on: C0 controls but tab and newline, DEL and C1 controls.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def assert_no_controls(text: str) -> None:
    """Nothing in ``text`` that a terminal would act on (an escape sequence, a bell)."""
    assert not CONTROL.search(text), repr(CONTROL.findall(text))
