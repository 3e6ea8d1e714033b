"""Markdown for the docs' tables: rows, and the line under each table that says which run
made its figures."""

from __future__ import annotations

from typing import Any


def head(cells: list) -> list[str]:
    """A table's header row and the rule under it."""
    return [row(cells), row(["---"] * len(cells))]


def row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def measured(provenance: dict[str, Any] | None) -> str:
    """Where a results file's figures came from, in one sentence."""
    if not provenance:
        return "The run recorded no provenance."
    date = (provenance.get("date_utc") or "?")[:10]
    commit = (provenance.get("commit") or "?")[:7]
    if provenance.get("reconstructed"):
        return f"Written in commit {commit} on {date}; the run recorded no machine or versions."
    cpu = provenance.get("cpu") or "an unrecorded CPU"
    cores = provenance.get("cores_usable") or provenance.get("cpu_count")
    dirty = " with local changes" if provenance.get("dirty") else ""
    versions = f"torch {provenance.get('torch')}, ExecuTorch {provenance.get('executorch')}"
    return f"Measured on {cpu} ({cores} cores) at {commit}{dirty} on {date}; {versions}."
