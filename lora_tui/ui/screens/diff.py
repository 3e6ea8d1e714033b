"""F4: two answers side by side, word by word: what only the left one says is red and
struck through, what only the right one says is green. Tab compares with the next pane."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from lora_tui.common.literal import literal, printable

REMOVED = "bold red strike"
ADDED = "bold green"
PARTS = "reverse"  # the first word where the two replies part


def words(text: str) -> list[str]:
    """Words and punctuation, each with the spaces after it, so the pieces join back into
    the text and a space alone never counts as a match."""
    return re.findall(r"\s+|\w+\s*|[^\w\s]+\s*", text)


def _marked(text: Text, chunk: str, style: str) -> None:
    """Mark a changed run of words, not the space after it."""
    core = chunk.rstrip()
    text.append(core, style)
    text.append(chunk[len(core) :])


def parting(a: list[str], b: list[str]) -> int | None:
    """The index of the first word where the two replies part (one may end there), or None
    when they are the same word for word."""
    for index, (mine, theirs) in enumerate(zip(a, b, strict=False)):  # one may be longer
        if mine.rstrip() != theirs.rstrip():
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def _mark_parting(text: Text, chunks: list[str], index: int) -> None:
    """Mark the word at ``index`` (not the space after it): where the replies part."""
    if index < len(chunks):
        start = len("".join(chunks[:index]))
        text.stylize(PARTS, start, start + len(chunks[index].rstrip()))


def word_diff(left: str, right: str) -> tuple[Text, Text, float]:
    """Both texts marked where they differ (and where they first part), and the share of
    words they have in common."""
    a, b = words(left), words(right)
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    shown_left, shown_right = Text(), Text()
    for op, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if op == "equal":
            shown_left.append("".join(a[a_start:a_end]))
            shown_right.append("".join(b[b_start:b_end]))
            continue
        _marked(shown_left, "".join(a[a_start:a_end]), REMOVED)
        _marked(shown_right, "".join(b[b_start:b_end]), ADDED)
    if (index := parting(a, b)) is not None:
        _mark_parting(shown_left, a, index)
        _mark_parting(shown_right, b, index)
    return shown_left, shown_right, matcher.ratio()


def parting_line(left: str, right: str) -> str:
    """Where the two replies part, in words, for the summary."""
    a, b = words(left), words(right)
    if (index := parting(a, b)) is None:
        return "the same word for word"
    return f"they part at word {index + 1} ({_said(a, index)} / {_said(b, index)})"


def _said(chunks: list[str], index: int) -> str:
    return repr(chunks[index].rstrip()) if index < len(chunks) else "its end"


class DiffScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,f4,q", "dismiss", "Close"),
        Binding("tab", "next_answer", "Compare with the next"),
    ]

    def __init__(self, answers: list[tuple[str, str]], left: int = 0) -> None:
        """``answers``: (label, last reply) of every pane with one; ``left``: the selected."""
        super().__init__()
        self.answers = answers
        self.left = left
        self.right = (left + 1) % len(answers)

    def compose(self) -> ComposeResult:
        with Vertical(id="diff-body"):
            yield Label(id="diff-summary")
            with Horizontal():
                yield VerticalScroll(Static(id="diff-left-text"), id="diff-left")
                yield VerticalScroll(Static(id="diff-right-text"), id="diff-right")

    def on_mount(self) -> None:
        self._show()

    def action_next_answer(self) -> None:
        self.right = (self.right + 1) % len(self.answers)
        if self.right == self.left:
            self.right = (self.right + 1) % len(self.answers)
        self._show()

    def _show(self) -> None:
        (left_label, left_text), (right_label, right_text) = (
            self.answers[self.left],
            self.answers[self.right],
        )
        shown_left, shown_right, ratio = word_diff(printable(left_text), printable(right_text))
        more = " · Tab: the next pane" if len(self.answers) > 2 else ""
        parts = parting_line(printable(left_text), printable(right_text))
        self.query_one("#diff-summary", Label).update(
            literal(
                f"{left_label} vs {right_label}: {ratio:.0%} of the words in common; "
                f"{parts}{more} · Esc closes"
            )
        )
        self.query_one("#diff-left", VerticalScroll).border_title = literal(left_label)
        self.query_one("#diff-right", VerticalScroll).border_title = literal(right_label)
        self.query_one("#diff-left-text", Static).update(shown_left)
        self.query_one("#diff-right-text", Static).update(shown_right)
