"""Conversations as one Markdown document, one section per adapter."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from lora_tui.common.files import write_text_atomic
from lora_tui.engine.conversation import NOTICE, Turn


def save_transcript(panes: list[tuple[str, list[Turn]]], folder: Path) -> str:
    """Write the transcript into ``folder`` under a new name; a line saying where, or why
    it could not."""
    when = datetime.now()
    path = folder / f"lora-tui-transcript-{when:%Y%m%d-%H%M%S}.md"
    try:
        write_text_atomic(path, transcript_markdown(panes, when))
    except OSError as err:
        raise OSError(f"could not save {path}: {err.strerror or err}") from err
    return f"saved {path}"


def transcript_markdown(panes: list[tuple[str, list[Turn]]], when: datetime) -> str:
    lines = [f"# lora-tui transcript — {when:%Y-%m-%d %H:%M}", ""]
    for name, turns in panes:
        lines += [f"## {name}", ""]
        if not turns:
            lines += ["_(no messages)_", ""]
        for turn in turns:
            if turn.role == NOTICE:
                lines += [f"> {turn.text}", ""]
                continue
            heading = "**You**" if turn.role == "user" else f"**{name}**"
            note = f" _({turn.note})_" if turn.note else ""
            lines += [f"{heading}{note}", "", turn.text or "_(empty)_", ""]
    return "\n".join(lines)
