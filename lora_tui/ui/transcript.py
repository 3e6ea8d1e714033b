"""Conversations as one Markdown document, one section per adapter."""

from __future__ import annotations

from datetime import datetime

from lora_tui.ui.widgets.adapter_pane import Turn


def transcript_markdown(panes: list[tuple[str, list[Turn]]], when: datetime) -> str:
    lines = [f"# lora-tui transcript — {when:%Y-%m-%d %H:%M}", ""]
    for name, turns in panes:
        lines += [f"## {name}", ""]
        if not turns:
            lines += ["_(no messages)_", ""]
        for turn in turns:
            if turn.role == "notice":
                lines += [f"> {turn.text}", ""]
                continue
            heading = "**You**" if turn.role == "user" else f"**{name}**"
            note = f" _({turn.note})_" if turn.note else ""
            lines += [f"{heading}{note}", "", turn.text or "_(empty)_", ""]
    return "\n".join(lines)
