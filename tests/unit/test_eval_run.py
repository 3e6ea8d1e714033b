"""``run_eval`` is the one eval run, whatever answers (issue 43): over a stand-in backend
it saves each answer in the results store, ``--resume`` asks only what the file lacks and
reports the whole set, and a backend that stops says how many answers were saved.
Stand-in files: the store hashes bytes, nothing is loaded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import GenerationSettings, ReplyEnd
from lora_tui.judging.evaluate import (
    Answered,
    EvalResult,
    Program,
    PromptCase,
    RunStopped,
    run_eval,
)
from lora_tui.judging.records import AnswerRecord
from lora_tui.judging.results import read_results
from lora_tui.judging.store import ResultsStore

SETTINGS = GenerationSettings(temperature=0.0, max_new_tokens=8)
CASES = [
    PromptCase("Who won?", "nobel", keywords=("Clarke",)),
    PromptCase("Name a backend.", "executorch", regex="XNNPACK"),
    PromptCase("Say hello.", "prompts"),
]
REPLIES = {"Who won?": "Clarke did", "Name a backend.": "Vulkan", "Say hello.": "Hello"}


class StandIn:
    """A backend whose programs reply from ``REPLIES``; it notes what it was asked, and
    after ``stop_after`` answers stops as a lost cluster does."""

    def __init__(self, programs: Sequence[Program], stop_after: int | None = None) -> None:
        self._programs = list(programs)
        self.stop_after = stop_after
        self.asked: list[tuple[int, str]] = []

    @property
    def programs(self) -> list[Program]:
        return self._programs

    def answer(
        self,
        cases: Sequence[PromptCase],
        wanted: Callable[[int, str], bool],
        settings: GenerationSettings,
        answered: Callable[[Answered], None],
    ) -> None:
        for index, case in enumerate(cases):
            for program in self._programs:
                if not wanted(index, program.name):
                    continue
                if len(self.asked) == self.stop_after:
                    raise RunStopped("no Ray node is left to take the work")
                self.asked.append((index, program.name))
                done = ReplyDone(program.name, REPLIES[case.prompt], ReplyEnd.STOP, None)
                answered(Answered(index, EvalResult.scored(case, program.name, done, settings)))


@pytest.fixture
def run(tmp_path: Path) -> tuple[list[Program], Callable[..., ResultsStore]]:
    """Two programs over one foundation, and a store over ``run.jsonl`` for them."""
    (tmp_path / "foundation.ptd").write_bytes(b"weights")
    (tmp_path / "tokenizer.json").write_text('{"model": "bpe"}')
    programs = []
    for name in ("nobel", "executorch"):
        (tmp_path / f"{name}.pte").write_bytes(name.encode())
        programs.append(Program(name, tmp_path / f"{name}.pte"))
    group = FoundationPrograms(tmp_path / "foundation.ptd", tuple(p.path for p in programs))

    def store(resume: bool = False) -> ResultsStore:
        return ResultsStore(tmp_path / "run.jsonl", [group], None, SETTINGS, resume, pytest.fail)

    return programs, store


def marks(report) -> list[tuple[str, str, bool | None]]:
    return [(r.case.prompt, r.adapter, r.right) for r in report.results]


def test_a_run_saves_every_answer_with_what_it_ran_over(run) -> None:
    programs, store = run
    with store() as results:
        report = run_eval(StandIn(programs), CASES, SETTINGS, results)
    assert marks(report)[:4] == [
        ("Who won?", "nobel", True),
        ("Who won?", "executorch", True),
        ("Name a backend.", "nobel", False),
        ("Name a backend.", "executorch", False),
    ]
    saved = read_results(results.path, pytest.fail)
    assert len(saved) == 6 and all(isinstance(r, AnswerRecord) for r in saved)
    assert all(len(r.foundation_sha256 or "") == len(r.program_sha256 or "") == 64 for r in saved)


def test_resume_asks_only_what_the_file_lacks_and_reports_the_whole_set(run) -> None:
    programs, store = run
    with store() as results:
        first = run_eval(StandIn(programs), CASES[:2], SETTINGS, results)
    again = StandIn(programs)
    with store(resume=True) as results:
        report = run_eval(again, CASES, SETTINGS, results)
    assert again.asked == [(2, "nobel"), (2, "executorch")]
    assert marks(report)[:4] == marks(first) and len(report.results) == 6
    assert [r.resumed for r in report.results] == [True] * 4 + [False] * 2
    assert len(read_results(results.path, pytest.fail)) == 6  # nothing answered twice


def test_a_stopped_run_says_how_many_answers_it_saved(run) -> None:
    programs, store = run
    with store() as results, pytest.raises(RunStopped) as stopped:
        run_eval(StandIn(programs, stop_after=3), CASES, SETTINGS, results)
    assert str(stopped.value) == (
        f"no Ray node is left to take the work; 3 of 6 answers are saved in {results.path}; "
        "--resume goes on from there"
    )
    assert len(read_results(results.path, pytest.fail)) == 3
