"""The one root of every error the exporter and the engine report to a person."""

from __future__ import annotations


class ArtifactError(Exception):
    """Bad input: one line that names the file and the problem. ``ExportError`` and
    ``EngineError`` subclass it, so a caller catches this one and prints it as it is."""


def one_line(err: BaseException) -> str:
    """An error as one line: an ArtifactError's own words, else its type and first line."""
    if isinstance(err, ArtifactError):
        return str(err)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def quoted(value: object, limit: int = 40) -> str:
    """A value from a stranger's file, quoted for a one-line error: its repr (so a newline
    or a control character shows escaped), cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
