"""A conversation with one adapter, kept by whoever drives the engine: a pane of the app, a
benchmark, a script. The engine keeps none: each reply is asked with the whole conversation
so far (``messages``), and reuses the K/V of the tokens it ran last time.

What is sent follows what happened: a failed reply takes its prompt with it, a cancelled
one stays as it was cut, and the oldest exchanges the context no longer held (the engine
says how many in ``ReplyDone.forgotten``) are left out from then on, a system message
kept. A prompt may be kept to ask later (its adapter is still loading); once asked it is
the next turn, or, if it is never sent, a notice says so."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import Message, ReplyEnd

NOTICE = "notice"  # a turn shown (and saved in a transcript) but never sent


@dataclass
class Turn:
    role: str  # "system", "user", "assistant" or NOTICE
    text: str
    note: str = ""  # how a reply ended, when not plainly: "cancelled", "error: ..."
    end: ReplyEnd | None = None  # a reply's end


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)
    forgotten: int = 0  # the oldest messages the context no longer holds
    kept: list[str] = field(default_factory=list)  # prompts to ask later, in order

    @classmethod
    def of(cls, messages: Iterable[Message]) -> Conversation:
        """A conversation that has gone this far already (a system message, say)."""
        return cls([Turn(m.role, m.content) for m in messages])

    @property
    def messages(self) -> list[Message]:
        """What the adapter answers from: every exchange but those whose reply failed and
        those the context no longer holds (a system message stays). A cancelled reply stays,
        as it was cut."""
        sent: list[Message] = []
        for turn in self.turns:
            if turn.role == NOTICE:
                continue
            if turn.end is ReplyEnd.ERROR:
                sent.pop()  # its prompt goes with it
            else:
                sent.append(Message(turn.role, turn.text))
        system = 1 if sent and sent[0].role == "system" else 0
        return sent[:system] + sent[system + self.forgotten :]

    def ask(self, text: str) -> list[Message]:
        """``text`` as the next prompt (the first kept, if prompts were kept): what to send."""
        if self.kept:
            self.kept.pop(0)
        self.turns.append(Turn("user", text))
        return self.messages

    def answered(self, done: ReplyDone) -> Turn:
        """Keep the reply, with how it ended, and leave out from now on what the context no
        longer held. Returns its turn."""
        note = {
            ReplyEnd.CANCELLED: "cancelled",
            ReplyEnd.ERROR: f"error: {done.error}",
            ReplyEnd.CONTEXT: "stopped: context full",
        }.get(done.end, "")
        turn = Turn("assistant", done.text, note, done.end)
        self.turns.append(turn)
        self.forgotten += done.forgotten
        return turn

    def keep(self, text: str) -> None:
        """A prompt to ask later, after those kept before it."""
        self.kept.append(text)

    def missed(self, why: str) -> list[str]:
        """The prompts kept will not be asked: each becomes a notice saying why. Returns them."""
        missed, self.kept = self.kept, []
        self.turns += [Turn(NOTICE, f"not sent ({why}): {text}") for text in missed]
        return missed

    def notice(self, text: str) -> None:
        self.turns.append(Turn(NOTICE, text))

    def retract(self) -> str | None:
        """Take back the last prompt and what followed it, to ask it again; returns it (None
        if nothing was asked)."""
        asked = [i for i, turn in enumerate(self.turns) if turn.role == "user"]
        if not asked:
            return None
        prompt = self.turns[asked[-1]].text
        del self.turns[asked[-1] :]
        return prompt

    def clear(self) -> None:
        self.turns.clear()
        self.kept.clear()
        self.forgotten = 0

    @property
    def prompts(self) -> list[str]:
        return [turn.text for turn in self.turns if turn.role == "user"]

    @property
    def last_reply(self) -> str | None:
        replies = [turn.text for turn in self.turns if turn.role == "assistant"]
        return replies[-1] if replies else None
