"""A judged session as a results file has it, for the tests of its exports."""

from __future__ import annotations

NAMES = ["nobel", "executorch"]


def vote_session() -> list[dict]:
    settings = {"temperature": 0.8, "top_p": 0.9, "max_new_tokens": 64, "seed": 3}
    answers = [
        {
            "round": "r1",
            "prompt": "Who won?",
            "adapter": n,
            "answer": f"{n} says",
            "settings": settings,
        }
        for n in NAMES
    ]
    vote = {"type": "vote", "round": "r1", "prompt": "Who won?", "adapters": NAMES}
    return [*answers, {**vote, "verdict": "nobel"}]
