"""Prompts out and replies in: which panes a prompt goes to, the round it starts, answering
again, and each answer recorded in the results file.

A round is one prompt sent to some panes (``rounds.py``); blind votes, regenerate and prompt
sets wait on it. Each pane owns its conversation; every prompt goes to the engine with the
conversation so far, so answering again is the same conversation sent once more."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lora_tui.evaluate import EvalResult, PromptCase
from lora_tui.results import ResultsWriter, origin_fields, reply_record
from lora_tui.ui.rounds import Round
from lora_tui.ui.settings import SentSettings
from lora_tui.ui.widgets.adapter_pane import AdapterPane, PaneState

if TYPE_CHECKING:
    from lora_tui.engine.protocol import ReplyDone
    from lora_tui.engine.types import GenerationSettings
    from lora_tui.ui.blind import BlindMode
    from lora_tui.ui.workbench import Workbench


class Replies:
    def __init__(self, app: Workbench, blind: BlindMode, results: ResultsWriter | None) -> None:
        self.app = app
        self.blind = blind
        self.results = results
        self.sent = SentSettings()
        self.round: Round | None = None  # the last prompt, until every pane has answered it

    async def targets(self) -> list[AdapterPane]:
        """The panes a prompt goes to now; empty, with a notice saying why, if none can."""
        app = self.app
        candidates = list(app.panes.values()) if app.broadcast else [app.selected_pane]
        panes = [p for p in candidates if p is not None]
        targets = [p for p in panes if p.can_answer] if app.engine is not None else []
        states = {p.state for p in panes}
        if not targets:
            if PaneState.BUILDING in states:
                why = "the programs are still being built; your prompt is kept, send it then"
            elif app.engine is None:
                app.notify(
                    "no engine is running (it kept stopping); restart lora-tui", severity="error"
                )
                return []
            elif PaneState.GENERATING in states:
                why = "still answering — Esc cancels"
            elif PaneState.LOADING in states:
                why = "the adapters are still loading; your prompt is kept, send it once one is"
            else:
                why = "no adapter is ready"
            app.notify(why, severity="warning")
            return []
        if not self.blind.on:
            return targets
        # Every adapter that works answers every blind prompt (one that failed to load sits
        # it out).
        if len(targets) < sum(p.state is not PaneState.ERROR for p in panes):
            app.notify("blind mode waits for every adapter to be ready", severity="warning")
            return []
        return await self.blind.shuffle(targets)

    async def start_round(
        self, panes: list[AdapterPane], text: str, case: PromptCase | None = None
    ) -> Round:
        """Send one prompt to these panes, each with its own settings."""
        self.round = Round(text, [p.adapter_name for p in panes], blind=self.blind.on, case=case)
        for pane in panes:
            await pane.start_reply(text)
        self._send(panes)
        return self.round

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
            self._send(same)

    def _send(self, panes: list[AdapterPane]) -> None:
        """Each pane's conversation to the engine, grouped by the settings each answers with."""
        engine = self.app.engine
        assert engine is not None
        by_name = {p.adapter_name: p for p in panes}
        overrides = {name: pane.overrides for name, pane in by_name.items()}
        for settings, group in self.sent.group(self.app.settings, overrides).items():
            engine.send({name: by_name[name].messages() for name in group}, settings)

    def sent_settings(self, adapter: str) -> GenerationSettings:
        return self.sent.of(adapter, self.app.settings)

    def reply_done(self, done: ReplyDone, pane: AdapterPane | None = None) -> None:
        """A pane's reply ended: record it (when ``pane`` still shows it) and close the
        round if it was the last one the round waited for."""
        if pane is not None:
            self._record(pane, done)
        round = self.round
        if round is not None and round.reply_done(done):
            total = round.together_tok_s()
            for name in round.together:
                if total is not None and name in self.app.panes:
                    self.app.panes[name].show_together(total)
            self.blind.round_finished(round)

    def dropped(self, name: str) -> None:
        if self.round is not None:
            self.round.drop(name)

    def _record(self, pane: AdapterPane, done: ReplyDone) -> None:
        prompts = [t.text for t in pane.turns if t.role == "user"]
        if self.results is None or not prompts:
            return
        name, settings = pane.adapter_name, self.sent_settings(pane.adapter_name)
        round = self.round if self.round and name in self.round.adapters else None
        extra = {"round": round.id if round else None, **origin_fields(pane.info)}
        if round is not None and (case := round.case) is not None:

            def scored() -> dict[str, Any]:  # on the writer's thread: a regex takes up to 1 s
                return {**EvalResult.scored(case, name, done, settings).record(), **extra}

            self.results.append(scored, pane.path)
        else:
            record = reply_record(prompts[-1], name, done, settings)
            self.results.append({**record, **extra}, pane.path)
