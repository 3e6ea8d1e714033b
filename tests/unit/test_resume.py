"""``eval --resume`` keys: an answer is kept only for the same program, foundation and
tokenizer; a saved error is asked again; a damaged line is skipped with a warning (issue 42).
Stand-in files: the keys hash bytes, nothing is loaded."""

from __future__ import annotations

from pathlib import Path

from lora_tui.engine.foundations import FoundationPrograms
from lora_tui.engine.protocol import ReplyDone
from lora_tui.engine.types import GenerationSettings, ReplyEnd
from lora_tui.judging.evaluate import EvalResult, PromptCase
from lora_tui.judging.store import ResultsStore

SETTINGS = GenerationSettings(temperature=0.0, max_new_tokens=8)
ASKED = PromptCase("Who won?", "nobel")
FAILED = PromptCase("Name a backend.", "executorch")


def store(tmp_path: Path, resume: bool, warn=print) -> ResultsStore:
    weights, program = tmp_path / "foundation.ptd", tmp_path / "nobel.pte"
    group = FoundationPrograms(weights, (program,))
    return ResultsStore(tmp_path / "run.jsonl", [group], None, SETTINGS, resume, warn)


def first_run(tmp_path: Path) -> Path:
    """Two answers saved: one whole, one that failed; then a line a crash left damaged."""
    for name, data in (("foundation.ptd", b"weights"), ("nobel.pte", b"program")):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "tokenizer.json").write_text('{"model": "bpe"}')
    saved = store(tmp_path, resume=False)
    program = tmp_path / "nobel.pte"
    for case, end in ((ASKED, ReplyEnd.STOP), (FAILED, ReplyEnd.ERROR)):
        done = ReplyDone("nobel", "an answer", end, None, "boom" if end == "error" else None)
        saved.save(EvalResult.scored(case, "nobel", done, SETTINGS).record(), program)
    saved.close()
    with (tmp_path / "run.jsonl").open("a") as out:
        out.write('{"prompt": "Who won?", "ans{"prompt": "x"}\n')  # a glued line
    return program


def resumed(tmp_path: Path) -> tuple[ResultsStore, list[str]]:
    warnings: list[str] = []
    return store(tmp_path, resume=True, warn=warnings.append), warnings


def test_resume_keeps_whole_answers_retries_errors_and_skips_damage(tmp_path: Path) -> None:
    program = first_run(tmp_path)
    saved, shown = resumed(tmp_path)
    assert saved.earlier(ASKED.prompt, program) is not None
    assert saved.earlier(FAILED.prompt, program) is None  # asked again
    assert len(shown) == 1 and "skipped 1 line" in shown[0]
    saved.close()


def test_resume_asks_again_over_another_foundation_or_tokenizer(tmp_path: Path) -> None:
    program = first_run(tmp_path)
    (tmp_path / "foundation.ptd").write_bytes(b"other weights, same names")
    saved, _ = resumed(tmp_path)
    assert saved.earlier(ASKED.prompt, program) is None
    saved.close()
    (tmp_path / "foundation.ptd").write_bytes(b"weights")
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": "another"}')
    saved, _ = resumed(tmp_path)
    assert saved.earlier(ASKED.prompt, program) is None
    saved.close()
    (tmp_path / "tokenizer_config.json").unlink()
    saved, _ = resumed(tmp_path)
    assert saved.earlier(ASKED.prompt, program) is not None  # the same run again
    saved.close()
