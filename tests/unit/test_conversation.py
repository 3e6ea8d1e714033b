"""One conversation model (engine/conversation.py), for a pane of the app and a script alike:
what it sends next after each kind of reply, what it forgets, keeps and takes back."""

from lora_tui.engine.conversation import NOTICE, Conversation
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
    # Each turn is still there to show and save, with how its reply ended.
    assert [(t.role, t.note) for t in chat.turns[3:6]] == [
        ("assistant", "error: boom"),
        ("user", ""),
        ("assistant", "cancelled"),
    ]


def test_what_the_context_left_out_is_forgotten_and_the_system_message_stays() -> None:
    chat = Conversation.of([Message("system", "be brief")])
    for turn in ("one", "two"):
        chat.ask(turn)
        chat.answered(done(f"re {turn}"))
    chat.ask("three")
    chat.answered(done("re three", forgotten=2))
    assert [m.content for m in chat.messages] == ["be brief", "two", "re two", "three", "re three"]


def test_forgetting_counts_what_was_sent_not_what_failed_or_was_only_shown() -> None:
    # The engine counts the messages it was sent, so a failed exchange and a notice (never
    # sent) must not shift what is left out.
    chat = Conversation()
    chat.ask("one")
    chat.answered(done("re one"))
    chat.ask("lost")
    chat.answered(done("", ReplyEnd.ERROR))
    chat.notice("context full")
    chat.ask("two")
    chat.answered(done("re two", forgotten=2))
    assert [m.content for m in chat.ask("three")] == ["two", "re two", "three"]
    assert chat.forgotten == 2


def test_a_kept_prompt_is_asked_in_turn_or_missed_with_a_notice() -> None:
    chat = Conversation()
    chat.keep("first")
    chat.keep("second")
    assert chat.messages == []  # kept, not sent
    assert chat.ask("first") == [Message("user", "first")]
    assert chat.kept == ["second"]
    chat.answered(done("re first"))
    assert chat.missed("unloaded") == ["second"]
    assert chat.kept == [] and chat.turns[-1].role == NOTICE
    assert chat.turns[-1].text == "not sent (unloaded): second"
    assert chat.ask("third")[-1] == Message("user", "third")  # the notice is never sent


def test_retract_takes_back_the_last_prompt_and_its_reply() -> None:
    chat = Conversation()
    assert chat.retract() is None
    chat.ask("one")
    chat.answered(done("re one"))
    chat.ask("two")
    chat.answered(done("re two"))
    assert chat.retract() == "two"
    assert chat.last_reply == "re one" and chat.prompts == ["one"]
    assert chat.ask("two") == [
        Message("user", "one"),
        Message("assistant", "re one"),
        Message("user", "two"),
    ]


def test_clear_forgets_everything() -> None:
    chat = Conversation()
    chat.keep("later")
    chat.ask("now")
    chat.answered(done("re", forgotten=2))
    chat.clear()
    assert (chat.turns, chat.kept, chat.forgotten, chat.last_reply) == ([], [], 0, None)
