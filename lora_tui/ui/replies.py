"""Prompts out and replies in, over the main screen's panes: which panes a prompt goes to,
the round it starts (``judging/rounds.py`` keeps the rounds), answering again, and each
answer recorded in the results file.

Each pane keeps its conversation; every prompt goes to the engine with the conversation so
far, so answering again is the same conversation sent once more. A pane still loading (or
being built) keeps the prompts sent meanwhile and answers them in order once it has
loaded, each in its round; if it fails to load, or Esc drops them, it says so. A prompt
set's answer is scored once, off the event loop, for its results line and the scores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Future

from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import AdapterInfo, GenerationSettings
from lora_tui.judging.evaluate import EvalResult, PromptCase
from lora_tui.judging.records import AnswerRecord
from lora_tui.judging.rounds import Round, Rounds
from lora_tui.ui.session import Session
from lora_tui.ui.settings import SentSettings
from lora_tui.ui.widgets.adapter_pane import AdapterPane, PaneState


class Replies:
    def __init__(
        self,
        panes: Mapping[str, AdapterPane],
        session: Session,
        round_over: Callable[[Round], None],
        notify: Callable[..., None],
    ) -> None:
        """``panes``: the main screen's, in the order they show. ``round_over(round)`` is
        told of each round every pane has answered (or dropped out of)."""
        self.panes, self.session = panes, session
        self.round_over, self.notify = round_over, notify
        self.rounds = Rounds()
        self.sent = SentSettings()

    def keeps(self, pane: AdapterPane) -> bool:
        """It keeps the next prompt to answer later: it is still loading (or being built), or
        it answers prompts it kept so."""
        waiting = pane.state in (PaneState.LOADING, PaneState.BUILDING)
        return waiting or self.rounds.keeps(pane.adapter_name)

    def targets(self, candidates: list[AdapterPane]) -> list[AdapterPane]:
        """Those of ``candidates`` a prompt goes to now, or that keep it for when they have
        loaded; none, with a notice saying why, if none can."""
        running = self.session.engine is not None
        targets = [p for p in candidates if self.keeps(p) or (running and p.can_answer)]
        if targets:
            return targets
        if not running:
            why = "no engine is running (it kept stopping); restart lora-tui"
            self.notify(why, severity="error")
        elif any(p.state is PaneState.GENERATING for p in candidates):
            self.notify("still answering — Esc cancels", severity="warning")
        else:
            self.notify("no adapter is ready", severity="warning")
        return []

    async def start_round(
        self,
        panes: list[AdapterPane],
        text: str,
        blind: bool = False,
        case: PromptCase | None = None,
    ) -> Round:
        """Send one prompt to these panes, each with its own settings; a pane that cannot
        answer it yet keeps it (``send_kept``). Only the panes sent it now answer together."""
        later = [p for p in panes if self.keeps(p)]
        names = [p.adapter_name for p in panes]
        round = self.rounds.start(text, names, [p.adapter_name for p in later], blind, case)
        now = [p for p in panes if p not in later]
        for pane in panes:
            if pane in later:
                await pane.keep(text)
            else:
                await pane.start_reply(text)
        if now:
            self._send(now, round)
        return round

    async def loaded(self, pane: AdapterPane, info: AdapterInfo) -> None:
        pane.loaded(info)
        await self.send_kept(pane)

    async def finish_reply(self, pane: AdapterPane, done: ReplyDone) -> None:
        """A pane's reply ended: shown, recorded, and its next kept prompt sent."""
        shown = await pane.finish_reply(done)
        self.reply_done(done, pane if shown else None)
        await self.send_kept(pane)

    async def send_kept(self, pane: AdapterPane) -> None:
        """The first prompt this pane kept, now that it can answer, in the round it was for."""
        if not pane.can_answer or self.session.engine is None:
            return
        if (round := self.rounds.next_kept(pane.adapter_name)) is not None:
            await pane.start_reply(round.prompt)
            self._send([pane], round)

    def drop_kept(self, why: str) -> None:
        """Every prompt kept and not sent yet is dropped (Esc, Ctrl+L), each pane saying so."""
        for name in list(self.rounds.kept):
            self._miss(name, why)

    def settle(self) -> None:
        """A pane that failed (its load, its build, its engine) misses the prompts it kept."""
        for name in list(self.rounds.kept):
            if (pane := self.panes.get(name)) is None or pane.state is PaneState.ERROR:
                self._miss(name, "this adapter failed to load")

    def _miss(self, name: str, why: str) -> None:
        self._closed(self.rounds.miss(name))
        if (pane := self.panes.get(name)) is not None:
            pane.missed(why)

    def answering(self) -> bool:
        return any(p.state is PaneState.GENERATING for p in self.panes.values())

    async def regenerate(self, panes: list[AdapterPane]) -> bool:
        """Answer the last prompt again in these panes (those with one to answer); False if
        none had one."""
        if self.session.engine is None:
            return False
        panes = [p for p in panes if p.can_answer]
        prompts = {p.adapter_name: await p.retract_last_exchange() for p in panes}
        panes = [p for p in panes if prompts[p.adapter_name] is not None]
        if not panes:
            self.notify("nothing to answer again (or still answering)", severity="warning")
            return False
        for prompt in dict.fromkeys(prompts[p.adapter_name] or "" for p in panes):
            same = [p for p in panes if prompts[p.adapter_name] == prompt]
            round = self.rounds.again(prompt, [p.adapter_name for p in same])
            for pane in same:
                await pane.start_reply(prompt)
            self._send(same, round)
        return True

    def _send(self, panes: list[AdapterPane], round: Round) -> None:
        """Each pane's conversation to the engine, grouped by the settings each answers with."""
        engine = self.session.engine
        assert engine is not None
        by_name = {p.adapter_name: p for p in panes}
        self.rounds.sent(list(by_name), round)
        overrides = {name: pane.overrides for name, pane in by_name.items()}
        for settings, group in self.sent.group(self.session.settings, overrides).items():
            engine.send({name: by_name[name].conversation.messages for name in group}, settings)

    def sent_settings(self, adapter: str) -> GenerationSettings:
        return self.sent.of(adapter, self.session.settings)

    def reply_done(self, done: ReplyDone, pane: AdapterPane | None = None) -> None:
        """A pane's reply ended: record it (when ``pane`` still shows it) and close its
        round if it was the last one the round waited for."""
        round, closed = self.rounds.reply_done(done)
        self._record(done, round, pane)
        self._closed([round] if round is not None and closed else [])

    def _closed(self, rounds: list[Round]) -> None:
        for round in rounds:
            total = round.together_tok_s()
            for name in round.together:
                if total is not None and name in self.panes:
                    self.panes[name].show_together(total)
            self.round_over(round)

    def dropped(self, name: str) -> None:
        """A pane went (unloaded): no round waits for it."""
        if (pane := self.panes.get(name)) is not None:
            pane.missed("unloaded")
        self._closed(self.rounds.drop(name))

    def _record(self, done: ReplyDone, round: Round | None, pane: AdapterPane | None) -> None:
        """Its results line, when ``pane`` still shows it. A prompt set's reply is scored
        first (on the writer's thread, else on one of its own) and its round keeps the
        score."""
        results = self.session.results
        line = results is not None and pane is not None and bool(pane.conversation.prompts)
        settings = self.sent_settings(done.adapter)
        info = pane.info if pane is not None else None
        round_id = round.id if round else None
        program = pane.path if pane is not None else None
        if round is not None and round.case is not None and done.adapter in round.replies:
            scoring = Scoring(round.case, done, settings, info, round_id)
            round.scores[done.adapter] = asyncio.wrap_future(scoring.result)
            if line and results is not None:
                results.append(scoring.line, program)  # quitting waits for it
            else:
                asyncio.get_running_loop().run_in_executor(None, scoring.line)
        elif line and results is not None and pane is not None:
            prompt = pane.conversation.prompts[-1]
            record = AnswerRecord.reply(prompt, done.adapter, done, settings, info, round=round_id)
            results.append(record, program)


class Scoring:
    """A prompt set's reply, scored once on whichever thread makes its results line:
    ``line()`` scores it and returns the line; ``result`` is the score, for the report."""

    def __init__(
        self,
        case: PromptCase,
        done: ReplyDone,
        settings: GenerationSettings,
        info: AdapterInfo | None,
        round_id: str | None,
    ) -> None:
        self.case, self.done, self.settings = case, done, settings
        self.info, self.round_id = info, round_id
        self.result: Future[EvalResult] = Future()

    def line(self) -> AnswerRecord:
        try:
            result = EvalResult.scored(self.case, self.done.adapter, self.done, self.settings)
        except BaseException as err:
            self.result.set_exception(err)
            raise
        self.result.set_result(result)
        return result.record(self.info, self.round_id)
