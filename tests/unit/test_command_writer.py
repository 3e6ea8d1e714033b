"""The engine's commands go out through a writer thread: the UI thread never waits for the
worker to read them, the order is kept, and a worker that is gone raises nothing."""

from __future__ import annotations

import multiprocessing as mp
import threading

from lora_tui.engine.protocol import Send, Shutdown
from lora_tui.engine.types import GenerationSettings, Message
from lora_tui.engine.worker import CommandWriter

# A long conversation, pasted: far more than a pipe holds before its reader reads.
PASTE = (Message("user", "word " * 400_000),)


def test_sending_never_waits_for_the_reader_and_keeps_the_order() -> None:
    ours, theirs = mp.Pipe()
    writer = CommandWriter(ours)
    sends = [Send(f"adapter{i}", PASTE, GenerationSettings()) for i in range(3)]
    sender = threading.Thread(target=lambda: [writer.send(s) for s in sends], daemon=True)
    sender.start()
    sender.join(30)  # nothing reads the other end meanwhile
    assert not sender.is_alive(), "sending waited for the reader"
    assert [theirs.recv() for _ in sends] == sends


def test_a_reader_that_is_gone_raises_nothing_and_ends_the_writer() -> None:
    ours, theirs = mp.Pipe()
    theirs.close()
    writer = CommandWriter(ours)
    writer.send(Send("adapter", PASTE, GenerationSettings()))
    writer.send(Shutdown())
    writer._thread.join(30)
    assert not writer._thread.is_alive()
