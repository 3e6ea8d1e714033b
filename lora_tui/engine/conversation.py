"""A conversation kept by a script that drives the engine (a benchmark, a sweep). The
engine keeps none: each reply is asked with the whole conversation so far, and reuses the
K/V of the tokens it ran last time. The app's panes keep theirs with what they show."""

from __future__ import annotations

from dataclasses import dataclass, field

from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import Message, ReplyEnd


@dataclass
class Conversation:
    messages: list[Message] = field(default_factory=list)

    def ask(self, text: str) -> list[Message]:
        """The conversation with ``text`` as its next prompt: what to send."""
        self.messages.append(Message("user", text))
        return list(self.messages)

    def answered(self, done: ReplyDone) -> None:
        """Keep the reply (a failed one takes its prompt with it) and forget the oldest
        messages the context no longer held."""
        if done.end is ReplyEnd.ERROR:
            self.messages.pop()
        else:
            self.messages.append(Message("assistant", done.text))
        keep = 1 if self.messages and self.messages[0].role == "system" else 0
        del self.messages[keep : keep + done.forgotten]
