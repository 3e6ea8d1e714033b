"""A script's conversation: what it sends next after each kind of reply."""

from lora_tui.engine.conversation import Conversation
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import Message, ReplyEnd


def done(text: str, end: ReplyEnd = ReplyEnd.STOP, forgotten: int = 0) -> ReplyDone:
    return ReplyDone("a", text, end, None, "boom" if end is ReplyEnd.ERROR else None, forgotten)


def test_replies_are_kept_and_a_failed_one_takes_its_prompt_with_it() -> None:
    chat = Conversation()
    assert chat.ask("one") == [Message("user", "one")]
    chat.answered(done("first"))
    chat.ask("two")
    chat.answered(done("", ReplyEnd.ERROR))
    chat.ask("three")
    chat.answered(done("cut sh", ReplyEnd.CANCELLED))  # shown as it was cut, so kept
    assert chat.ask("four") == [
        Message("user", "one"),
        Message("assistant", "first"),
        Message("user", "three"),
        Message("assistant", "cut sh"),
        Message("user", "four"),
    ]


def test_what_the_context_left_out_is_forgotten_and_the_system_message_stays() -> None:
    chat = Conversation([Message("system", "be brief")])
    for turn in ("one", "two"):
        chat.ask(turn)
        chat.answered(done(f"re {turn}"))
    chat.ask("three")
    chat.answered(done("re three", forgotten=2))
    assert [m.content for m in chat.messages] == ["be brief", "two", "re two", "three", "re three"]
