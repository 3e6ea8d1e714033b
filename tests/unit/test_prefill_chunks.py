"""How a reply cuts its prompt into forwards: alone in its process, as many tokens as the
program takes at once; beside other replies, 32 at a time (never more than the program
takes), so they take turns. Decided chunk by chunk, since replies come and go."""

from __future__ import annotations

from types import SimpleNamespace

from lora_tui.engine.session import PREFILL_CHUNK, Reply


def prefill(tokens: int, largest: int, alone_from: int | None) -> list[int]:
    """The sizes of the forwards that prefill ``tokens`` tokens; the reply is alone from
    its ``alone_from``-th chunk on (None: never)."""
    sizes: list[int] = []

    def forward(piece: list[int], position: int) -> str:
        assert position == sum(sizes)  # each chunk starts where the last one ended
        sizes.append(len(piece))
        return "logits"

    reply = Reply.__new__(Reply)  # only what _prefill reads
    reply.session = SimpleNamespace(
        cached=[], facts=SimpleNamespace(max_prefill=largest), forward=forward
    )
    reply.cancelled, reply.alone = False, alone_from == 0
    work = reply._prefill(list(range(tokens)), 0)
    for _ in work:
        if alone_from is not None and len(sizes) >= alone_from:
            reply.alone = True
    assert reply.session.cached == list(range(tokens))
    return sizes


def test_alone_it_takes_the_largest_chunk_the_program_takes() -> None:
    assert prefill(300, 127, alone_from=0) == [127, 127, 46]


def test_beside_others_it_takes_turns_and_goes_on_alone_when_they_finish() -> None:
    assert PREFILL_CHUNK == 32
    assert prefill(300, 127, alone_from=2) == [32, 32, 127, 109]


def test_a_program_that_takes_one_token_a_call_gets_one_either_way() -> None:
    assert prefill(3, 1, alone_from=None) == [1, 1, 1]
    assert prefill(3, 1, alone_from=0) == [1, 1, 1]
