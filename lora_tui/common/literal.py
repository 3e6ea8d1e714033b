"""Text from outside (file names, manifest values, errors that quote them, prompts, answers)
as the terminal should show it: literal, never markup, and with no control characters.

Rich and Textual read ``[...]`` in a str as markup, so ``support[lr=1e-4].pte`` loses its
brackets and ``[/]`` raises ``MarkupError``; and neither strips ESC, so a name holding an
escape sequence would reach the terminal as one. Everything shown that did not come from
this code goes through ``printable`` (a str, for what takes a plain string) or ``literal``
(a ``rich.text.Text``, which Rich and Textual show as it is, never parsed)."""

from __future__ import annotations

import re

from rich.text import Text

# A whole escape sequence goes, not only its ESC, so "\x1b[31m" leaves no "[31m" behind:
# CSI (ESC [ ... final), OSC and the other string commands (ESC ] P X ^ _ ... ST or BEL),
# then any two-byte ESC sequence. What is left of a malformed one falls to the next rule.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[ -/]*[0-~]"
)
# Every other C0 control but tab and newline, DEL and the C1 controls (0x80-0x9f: a
# terminal in 8-bit mode reads 0x9b as CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``str(text)`` without escape sequences or control characters (tab and newline stay)."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", str(text)))


def literal(text: object, style: str = "") -> Text:
    """``text`` as Rich ``Text``: shown exactly as written (less its control characters),
    in ``style``. Rich tables, consoles and every Textual widget take it as it is."""
    return Text(printable(text), style=style)
