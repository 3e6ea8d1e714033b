""" "Run prompt set…": every prompt of a ``lora-tui eval`` file through all panes in turn,
each in a fresh conversation, scored as ``lora-tui eval`` scores it; then the scores."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from lora_tui.common.literal import printable
from lora_tui.engine.types import GenerationSettings, ReplyEnd
from lora_tui.format import ArtifactError
from lora_tui.judging.evaluate import EvalReport, EvalResult, load_prompts
from lora_tui.ui.screens.scores import ScoresScreen

if TYPE_CHECKING:
    from lora_tui.engine.protocol import ReplyDone
    from lora_tui.judging.evaluate import PromptCase
    from lora_tui.ui.replies import Replies
    from lora_tui.ui.workbench import Workbench


async def run_prompt_set(app: Workbench, replies: Replies, path: Path) -> None:
    try:
        cases = load_prompts([path])
    except ArtifactError as err:
        app.notify(str(err), title="prompt set", severity="error", timeout=15)
        return
    panes = [p for p in app.panes.values() if p.can_answer]
    if not panes:
        app.notify("no adapter is ready", severity="warning")
        return
    report = EvalReport([p.adapter_name for p in panes])
    title, shown = app.sub_title, printable(path.name)
    try:
        for number, case in enumerate(cases, start=1):
            app.sub_title = f"prompt set {shown}: {number}/{len(cases)} · Esc stops"
            await app.action_clear()
            round = await replies.start_round(panes, case.prompt, case=case)
            await round.finished.wait()
            answers = [round.replies[name] for name in report.adapters]
            if any(done.end is ReplyEnd.CANCELLED for done in answers):
                break
            settings = [replies.sent_settings(done.adapter) for done in answers]
            # Scored on a thread: a prompt's regex may take a second per answer.
            results = await asyncio.to_thread(_scored, case, answers, settings)
            report.results.extend(results)
            for note in dict.fromkeys(r.note for r in results if r.note):
                app.notify(note, title="prompt set", severity="warning", markup=False)
    finally:
        app.sub_title = title
    answered = len(report.results) // len(report.adapters)
    app.push_screen(ScoresScreen(report, f"{path.name}: {answered} of {len(cases)} prompts"))


def _scored(
    case: PromptCase, answers: list[ReplyDone], settings: list[GenerationSettings]
) -> list[EvalResult]:
    pairs = zip(answers, settings, strict=True)
    return [EvalResult.scored(case, done.adapter, done, sent) for done, sent in pairs]
