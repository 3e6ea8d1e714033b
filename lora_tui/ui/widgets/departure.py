"""The departure view: a reply's tokens shaded by how unlikely the base program found each
(its log-probability under the base, ``Departure`` from the engine), the first token where
the adapter left the base's greedy reply marked, and a line naming it. The shading's steps
live here once, for the panes and the help's legend.

Tokens are the model's text: they go into Rich ``Text`` as they are, never read as
markup."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from lora_tui.common.literal import printable
from lora_tui.engine.protocol import Departure
from lora_tui.ui.widgets.thinking import ThinkSplitter


@dataclass(frozen=True)
class Step:
    above: float  # a token whose log-probability is at least this falls in the step
    style: str  # a Rich style: the background that shades it
    meaning: str  # the help's legend


# From likely to unlikely; the last step takes everything below the one before it.
STEPS = (
    Step(-1.0, "", "≥ -1: the base would say it too (plain)"),
    Step(-3.0, "on #4d4d1f", "-1 … -3: a little unlikely"),
    Step(-6.0, "on #6e4a12", "-3 … -6: unlikely"),
    Step(float("-inf"), "on #7a2222", "< -6: the base would hardly say it"),
)
DEPARTS = "bold underline #ff87ff"  # the first token the base would not have chosen
BASE_NOTE = "the base: others are scored against it"
NO_BASE = (
    "no base program open: open base.pte, or name one with --base or 'Use as base' in the palette"
)


def step_of(logprob: float) -> Step:
    return next(step for step in STEPS if logprob >= step.above)


def shaded(departure: Departure) -> Text:
    """The reply's answer (its thinking left out, as the pane shows it apart), each token on
    the background of its step, the departing token marked."""
    shown = Text()
    splitter = ThinkSplitter()
    for index, (piece, logprob) in enumerate(
        zip(departure.pieces, departure.logprobs, strict=True)
    ):
        style = step_of(logprob).style
        if index == departure.departs_at:
            style = f"{style} {DEPARTS}".strip()
        for thinking, text in splitter.feed(piece):
            if not thinking:
                shown.append(printable(text), style)
    for thinking, text in splitter.flush():
        if not thinking:
            shown.append(printable(text))
    # The answer starts after the thinking's blank lines, as the pane's Markdown does.
    return _trimmed(shown)


def _trimmed(text: Text) -> Text:
    start = len(text.plain) - len(text.plain.lstrip())
    end = len(text.plain.rstrip())
    return text[start:end] if start or end < len(text.plain) else text


def legend() -> Text:
    """The help's legend: each step's swatch and what it means."""
    shown = Text("Departure from the base: each token shaded by the base's log-probability of it")
    for step in STEPS:
        shown.append("\n  ")
        shown.append(" token ", step.style)
        shown.append(f"  {step.meaning}")
    shown.append("\n  ")
    shown.append(" token ", DEPARTS)
    shown.append("  the first token the base would not have said")
    return shown
