"""Blind mode: anonymous panes, shuffled for every prompt, a vote, then the names.

Chatbot Arena's way of judging, for adapters: the app asks ``BlindMode`` to start each
round; once every pane has answered the vote bar opens; the vote goes into the session's
``Tally`` (shown in the tally panel) and the results file, and the names are revealed."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from lora_tui.judging.arena import ALL_BAD, LABELS, TIE, Tally, blind_order
from lora_tui.judging.results import ResultsWriter, vote_record
from lora_tui.judging.rounds import Round
from lora_tui.ui.widgets.adapter_pane import AdapterPane, PaneState
from lora_tui.ui.widgets.tally_panel import TallyPanel
from lora_tui.ui.widgets.vote_bar import MAX_PANES, VoteBar

if TYPE_CHECKING:
    from lora_tui.ui.workbench import Workbench


class BlindMode:
    def __init__(
        self, app: Workbench, results: ResultsWriter | None, rng: random.Random | None = None
    ) -> None:
        self.app = app
        self.results = results  # each vote is a line there
        self.rng = rng or random.Random()
        self.on = False
        self.tally = Tally()  # kept for the session, across blind mode on and off

    @property
    def vote_bar(self) -> VoteBar:
        return self.app.main.query_one(VoteBar)

    async def toggle(self) -> None:
        app = self.app
        panes = list(app.panes.values())
        if any(p.state is PaneState.GENERATING for p in panes):
            app.notify("wait for the answers, or Esc to cancel them", severity="warning")
            return
        working = sum(p.state is not PaneState.ERROR for p in panes)
        if not self.on and not 2 <= working <= MAX_PANES:
            app.notify(f"blind mode compares 2 to {MAX_PANES} adapters", severity="warning")
            return
        self.on = not self.on
        app.main.set_class(self.on, "-blind")
        self.vote_bar.close()
        if self.on:
            app.broadcast = True  # every pane answers every prompt
            await app.action_clear()  # what was said so far would give the names away
            for index, pane in enumerate(panes):
                pane.set_alias(LABELS[index])
            app.main.query_one(TallyPanel).show(self.tally)
            app.notify(
                "names hidden; panes shuffle for every prompt; vote once all have answered",
                title="blind mode on",
            )
        else:
            for pane in panes:
                pane.set_alias(None)
            app.notify("names shown again; the tally is kept", title="blind mode off")

    async def shuffle(self, panes: list[AdapterPane]) -> list[AdapterPane]:
        """A new round: fresh conversations, a new order, letters in place of names."""
        await self.app.action_clear()
        self.vote_bar.close()
        order = blind_order([p.adapter_name for p in panes], self.rng)
        self.app.reorder(order)
        shuffled = [self.app.panes[name] for name in order]
        for index, pane in enumerate(shuffled):
            pane.set_alias(LABELS[index])
        return shuffled

    def round_finished(self, round: Round) -> None:
        if self.on and round.blind and not round.voted:
            self.vote_bar.ask(len(round.adapters))

    def voted(self, round: Round | None, choice: int | str | None) -> None:
        app = self.app
        self.vote_bar.close()
        app.focus_prompt()
        if round is None or not round.blind or round.voted:
            return
        round.voted = True
        names = round.adapters
        if choice is None:
            verdict = None
        else:
            verdict = names[choice] if isinstance(choice, int) else choice
            self.tally.record(names, verdict)
            if self.results is not None:
                record = vote_record(round.id, round.prompt, names, verdict)
                self.results.append(record, None)
            app.main.query_one(TallyPanel).show(self.tally)
        for pane in app.panes.values():
            if pane.alias is not None:
                pane.set_alias(pane.alias, revealed=True)
        shown = ", ".join(f"{LABELS[i]} = {name}" for i, name in enumerate(names))
        if verdict is None:
            said = "no vote"
        elif verdict in (TIE, ALL_BAD):
            said = f"you voted {verdict}"
        else:
            said = f"you voted {LABELS[names.index(verdict)]} ({verdict})"
        app.notify(f"{shown} · {said}", title="revealed")
