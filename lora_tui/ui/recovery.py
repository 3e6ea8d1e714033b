"""What the main screen does when its engine process dies: end the replies it was giving,
start a new engine (unless the supervisor says it keeps dying) and load the healthy panes
into it. Each pane's next prompt carries its whole conversation, as always, so the new
engine prefills it: a pane never waits on a dead engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lora_tui.engine.supervisor import EngineSupervisor
from lora_tui.ui.replies import Replies
from lora_tui.ui.widgets.adapter_pane import AdapterPane, PaneState


async def recover(
    error: str,
    panes: Iterable[AdapterPane],
    replies: Replies,
    supervisor: EngineSupervisor,
    notify: Callable[..., None],
) -> None:
    panes = list(panes)
    for pane in panes:
        if (done := await pane.engine_lost(error)) is not None:
            replies.reply_done(done)
    engine = supervisor.restart()
    if engine is None:
        what, timeout = "it keeps stopping, so it is not started again (see --log)", 60
    else:
        what, timeout = "started a new one", 30
    notify(f"{error}; {what}", title="engine stopped", severity="error", timeout=timeout)
    for pane in panes if engine is not None else []:
        if pane.state not in (PaneState.ERROR, PaneState.BUILDING) and pane.path is not None:
            pane.loading()
            engine.load(pane.path, pane.adapter_name)
    # A pane that failed with it misses the prompts it kept; the others answer them reloaded.
    if engine is None:
        replies.drop_kept("no engine is running")
    replies.settle()
