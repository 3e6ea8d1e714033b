"""A reasoning model's ``<think>…</think>`` block, shown dimmed and folded apart from the
answer (Qwen3 writes one when thinking is on)."""

from __future__ import annotations

from textual.widgets import Collapsible, Static

OPEN_TAG, CLOSE_TAG = "<think>", "</think>"


class ThinkSplitter:
    """Splits streamed text into thinking and answer at the tags, even when a tag arrives
    split across pieces: a tail that could start a tag is held back until the next piece."""

    def __init__(self) -> None:
        self.thinking = False
        self._held = ""

    def feed(self, text: str) -> list[tuple[bool, str]]:
        """(is thinking, text) runs of ``text``, in order."""
        text, self._held = self._held + text, ""
        runs: list[tuple[bool, str]] = []
        while text:
            tag = CLOSE_TAG if self.thinking else OPEN_TAG
            at = text.find(tag)
            if at >= 0:
                runs.append((self.thinking, text[:at]))
                text = text[at + len(tag) :]
                self.thinking = not self.thinking
                continue
            keep = next((n for n in range(len(tag) - 1, 0, -1) if text.endswith(tag[:n])), 0)
            runs.append((self.thinking, text[: len(text) - keep]))
            self._held = text[len(text) - keep :]
            break
        return [(thinking, part) for thinking, part in runs if part]

    def flush(self) -> list[tuple[bool, str]]:
        """Whatever was held back, once the reply has ended."""
        held, self._held = self._held, ""
        return [(self.thinking, held)] if held else []


class ThinkingBlock(Collapsible):
    """The model's thinking: open and dimmed while it streams, folded once the answer
    starts. Its text is never part of the answer."""

    def __init__(self) -> None:
        self._text = ""
        self._body = Static(classes="thinking-text", markup=False)
        super().__init__(self._body, title="thinking…", collapsed=False, classes="thinking")

    def append(self, text: str) -> None:
        self._text += text
        self._body.update(self._text.strip())

    def finish(self) -> None:
        self.title = f"thought ({len(self._text.split())} words)"
        self.collapsed = True
