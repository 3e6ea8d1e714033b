"""Prompts out and replies in: which panes a prompt goes to, the round it starts, answering
again, and each answer recorded in the results file.

A round is one prompt sent to some panes (``rounds.py``); blind votes, regenerate and prompt
sets wait on it. Each pane owns its conversation; every prompt goes to the engine with the
conversation so far, so answering again is the same conversation sent once more. A pane
still loading (or being built) keeps the prompts sent meanwhile and answers them in order
once it has loaded, each in its round; if it fails to load, or Esc drops them, it says so."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lora_tui.judging.evaluate import EvalResult, PromptCase
from lora_tui.judging.results import ResultsWriter, origin_fields, reply_record
from lora_tui.judging.rounds import Round
from lora_tui.ui.settings import SentSettings
from lora_tui.ui.widgets.adapter_pane import AdapterPane, PaneState

if TYPE_CHECKING:
    from lora_tui.engine.protocol import ReplyDone
    from lora_tui.engine.types import AdapterInfo, GenerationSettings
    from lora_tui.ui.blind import BlindMode
    from lora_tui.ui.workbench import Workbench


class Replies:
    def __init__(self, app: Workbench, blind: BlindMode, results: ResultsWriter | None) -> None:
        self.app = app
        self.blind = blind
        self.results = results
        self.sent = SentSettings()
        self.round: Round | None = None  # the last prompt, until every pane has answered it
        self.answering: dict[str, Round] = {}  # the round each pane's reply in progress is for
        self.kept: dict[str, list[Round]] = {}  # the prompts a pane keeps to answer, in order

    def keeps(self, pane: AdapterPane) -> bool:
        """It keeps the next prompt to answer later: it is still loading (or being built), or
        it answers prompts it kept so."""
        waiting = pane.state in (PaneState.LOADING, PaneState.BUILDING)
        return waiting or bool(self.kept.get(pane.adapter_name))

    async def targets(self) -> list[AdapterPane]:
        """The panes a prompt goes to now, or keep for when they have loaded; empty, with a
        notice saying why, if none can."""
        app = self.app
        candidates = list(app.panes.values()) if app.broadcast else [app.selected_pane]
        panes = [p for p in candidates if p is not None]
        running = app.engine is not None
        targets = [p for p in panes if self.keeps(p) or (running and p.can_answer)]
        if not targets:
            if not running:
                app.notify(
                    "no engine is running (it kept stopping); restart lora-tui", severity="error"
                )
                return []
            busy = any(p.state is PaneState.GENERATING for p in panes)
            why = "still answering — Esc cancels" if busy else "no adapter is ready"
            app.notify(why, severity="warning")
            return []
        if not self.blind.on:
            return targets
        # Every adapter that works answers every blind prompt at once (one that failed to
        # load sits it out).
        ready = [p for p in targets if p.can_answer and not self.keeps(p)]
        if len(ready) < sum(p.state is not PaneState.ERROR for p in panes):
            app.notify("blind mode waits for every adapter to be ready", severity="warning")
            return []
        return await self.blind.shuffle(ready)

    async def start_round(
        self, panes: list[AdapterPane], text: str, case: PromptCase | None = None
    ) -> Round:
        """Send one prompt to these panes, each with its own settings; a pane that cannot
        answer it yet keeps it (``send_kept``). Only the panes sent it now answer together."""
        names = [p.adapter_name for p in panes]
        self.round = round = Round(text, names, blind=self.blind.on, case=case)
        now = [p for p in panes if not self.keeps(p)]
        round.together = {p.adapter_name for p in now}
        for pane in panes:
            if pane in now:
                await pane.start_reply(text)
            else:
                self.kept.setdefault(pane.adapter_name, []).append(round)
                await pane.keep(text)
        if now:
            self._send(now, round)
        return round

    async def loaded(self, pane: AdapterPane, info: AdapterInfo) -> None:
        pane.loaded(info)
        await self.send_kept(pane)

    def load_failed(self, pane: AdapterPane, error: str) -> None:
        pane.failed(error)
        self.settle()

    async def finish_reply(self, pane: AdapterPane, done: ReplyDone) -> None:
        """A pane's reply ended: shown, recorded, and its next kept prompt sent."""
        shown = await pane.finish_reply(done)
        self.reply_done(done, pane if shown else None)
        await self.send_kept(pane)

    async def send_kept(self, pane: AdapterPane) -> None:
        """The first prompt this pane kept, now that it can answer, in the round it was for."""
        rounds = self.kept.get(pane.adapter_name)
        if not rounds or not pane.can_answer or self.app.engine is None:
            return
        round = rounds.pop(0)
        if not rounds:
            del self.kept[pane.adapter_name]
        await pane.start_reply(round.prompt)
        self._send([pane], round)

    def drop_kept(self, why: str) -> None:
        """Every prompt kept and not sent yet is dropped (Esc, Ctrl+L), each pane saying so."""
        for name in list(self.kept):
            self._miss(name, why)

    def settle(self) -> None:
        """A pane that failed (its load, its build, its engine) misses the prompts it kept."""
        for name in list(self.kept):
            if (pane := self.app.panes.get(name)) is None or pane.state is PaneState.ERROR:
                self._miss(name, "this adapter failed to load")

    def _miss(self, name: str, why: str) -> None:
        for round in self.kept.pop(name, []):
            if round.drop(name):
                self._round_over(round)
        if (pane := self.app.panes.get(name)) is not None:
            pane.missed(why)

    def cancel(self) -> None:
        """Esc: drop the prompts kept and not sent, and cancel the replies in progress (a
        prompt set running stops at this prompt)."""
        self.drop_kept("cancelled (Esc)")
        generating = any(p.state is PaneState.GENERATING for p in self.app.panes.values())
        if self.app.engine is not None and generating:
            self.app.engine.cancel(None)

    async def regenerate(self, panes: list[AdapterPane]) -> None:
        """Answer the last prompt again in these panes (those with one to answer)."""
        if self.app.engine is None:
            return
        panes = [p for p in panes if p.can_answer]
        prompts = {p.adapter_name: await p.retract_last_exchange() for p in panes}
        panes = [p for p in panes if prompts[p.adapter_name] is not None]
        if not panes:
            self.app.notify("nothing to answer again (or still answering)", severity="warning")
            return
        self.blind.vote_bar.close()
        for prompt in dict.fromkeys(prompts[p.adapter_name] or "" for p in panes):
            same = [p for p in panes if prompts[p.adapter_name] == prompt]
            names = [p.adapter_name for p in same]
            if self.round is None or self.round.voted or self.round.prompt != prompt:
                self.round = Round(prompt, names)
            self.round.again(names)
            for pane in same:
                await pane.start_reply(prompt)
            self._send(same, self.round)

    def _send(self, panes: list[AdapterPane], round: Round) -> None:
        """Each pane's conversation to the engine, grouped by the settings each answers with."""
        engine = self.app.engine
        assert engine is not None
        by_name = {p.adapter_name: p for p in panes}
        self.answering.update(dict.fromkeys(by_name, round))
        overrides = {name: pane.overrides for name, pane in by_name.items()}
        for settings, group in self.sent.group(self.app.settings, overrides).items():
            engine.send({name: by_name[name].conversation.messages for name in group}, settings)

    def sent_settings(self, adapter: str) -> GenerationSettings:
        return self.sent.of(adapter, self.app.settings)

    def reply_done(self, done: ReplyDone, pane: AdapterPane | None = None) -> None:
        """A pane's reply ended: record it (when ``pane`` still shows it) and close its
        round if it was the last one the round waited for."""
        round = self.answering.pop(done.adapter, None)
        if pane is not None:
            self._record(pane, done, round)
        if round is not None and round.reply_done(done):
            self._round_over(round)

    def _round_over(self, round: Round) -> None:
        total = round.together_tok_s()
        for name in round.together:
            if total is not None and name in self.app.panes:
                self.app.panes[name].show_together(total)
        self.blind.round_finished(round)

    def dropped(self, name: str) -> None:
        """A pane went (unloaded): no round waits for it."""
        self._miss(name, "unloaded")
        for round in (self.round, self.answering.pop(name, None)):
            if round is not None and round.drop(name):
                self._round_over(round)

    def _record(self, pane: AdapterPane, done: ReplyDone, round: Round | None) -> None:
        prompts = pane.conversation.prompts
        if self.results is None or not prompts:
            return
        name, settings = pane.adapter_name, self.sent_settings(pane.adapter_name)
        extra = {"round": round.id if round else None, **origin_fields(pane.info)}
        if round is not None and (case := round.case) is not None:

            def scored() -> dict[str, Any]:  # on the writer's thread: a regex takes up to 1 s
                return {**EvalResult.scored(case, name, done, settings).record(), **extra}

            self.results.append(scored, pane.path)
        else:
            record = reply_record(prompts[-1], name, done, settings)
            self.results.append({**record, **extra}, pane.path)
