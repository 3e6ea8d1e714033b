"""Judging adapters, without Textual: a prompt set scored (``evaluate``), the same on a Ray
cluster (``sweep``), memory and speed per program (``measure``), the results file and its
exports (``results``), and blind votes with their tally and Elo (``arena``). The app, the
commands and scripts all judge through these."""
