"""Assertions several tiers share."""

from __future__ import annotations

import subprocess


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
