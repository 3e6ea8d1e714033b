"""Benchmarks: each prints its figures and writes them to ``benchmarks/results/<name>.json``
(``record.py``). Run one at a time, alone on the machine, from the repository's root:
``.venv/bin/python -m benchmarks.<name>``."""
