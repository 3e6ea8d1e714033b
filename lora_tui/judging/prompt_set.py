"""A prompt set run through the app's panes, without Textual: it says which prompt to ask
next, takes each prompt's scored answers, and says when it is over with the report
``lora-tui eval`` would print. The app asks each prompt in a fresh conversation and shows
what it is told.

An adapter that stops answering partway (unloaded, or it failed to load again after its
engine was restarted) leaves the run: the report is of the adapters that answered every
prompt it covers; its answers stay in the results file. A cancelled answer (Esc) ends the
run at that prompt, which the report leaves out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lora_tui.engine.types import ReplyEnd
from lora_tui.judging.evaluate import EvalReport, EvalResult, PromptCase


@dataclass(frozen=True)
class Ask:
    """Ask this prompt next, the ``number``-th of ``total``, of the run's adapters."""

    case: PromptCase
    number: int
    total: int
    notes: tuple[str, ...] = ()  # about the marks just given (a regex out of time)
    left: tuple[str, ...] = ()  # adapters that stopped answering at the last prompt


@dataclass(frozen=True)
class Done:
    """The run is over: show ``report`` (``answered`` of ``total`` prompts)."""

    report: EvalReport
    answered: int
    total: int
    notes: tuple[str, ...] = ()
    left: tuple[str, ...] = ()


class PromptSetRun:
    def __init__(self, cases: list[PromptCase], adapters: list[str]) -> None:
        self.cases = cases
        self.report = EvalReport(list(adapters))
        self.answered = 0  # prompts every adapter still in the run has answered

    @property
    def adapters(self) -> list[str]:
        """Those still in the run, in order."""
        return self.report.adapters

    def first(self) -> Ask | Done:
        return self._next()

    def scored(self, results: Mapping[str, EvalResult]) -> Ask | Done:
        """The last prompt's answers, scored (adapter -> result): what comes next."""
        left = tuple(name for name in self.adapters if name not in results)
        if left:
            self._leave(left)
        answers = [results[name] for name in self.adapters]
        if not answers or any(result.done.end is ReplyEnd.CANCELLED for result in answers):
            return Done(self.report, self.answered, len(self.cases), left=left)
        self.report.results.extend(answers)
        self.answered += 1
        notes = tuple(dict.fromkeys(r.note for r in answers if r.note))
        return self._next(notes, left)

    def _next(self, notes: tuple[str, ...] = (), left: tuple[str, ...] = ()) -> Ask | Done:
        if self.answered < len(self.cases) and self.adapters:
            case = self.cases[self.answered]
            return Ask(case, self.answered + 1, len(self.cases), notes, left)
        return Done(self.report, self.answered, len(self.cases), notes, left)

    def _leave(self, names: tuple[str, ...]) -> None:
        """These adapters are out: their earlier marks leave the report too, so each of its
        rows still has one mark per adapter."""
        report = self.report
        report.adapters = [name for name in report.adapters if name not in names]
        report.results = [r for r in report.results if r.adapter not in names]
