"""ExecuTorch's own TextLLMRunner, run on a program as ExecuTorch's runners run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

NEW_TOKENS = 24


# TextLLMRunner prints the generated text to stdout, then a stats line; run it in a child
# so its native output cannot mix with the test's.
RUNNER = """
import sys
import executorch.extension.llm.custom_ops.custom_ops  # registers custom_sdpa
import executorch.kernels.quantized  # int8 embeddings (8da4w), as export_llm's programs need
from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

pte, tokenizer, ptd, max_new = sys.argv[1:5]
runner = TextLLMRunner(pte, tokenizer, ptd)
config = GenerationConfig(echo=False, max_new_tokens=int(max_new), temperature=0.0)
runner.generate(sys.stdin.read(), config)
"""


STATS = re.compile(rb"\n?PyTorchObserver (\{.*\})")


def run_text_llm_runner(pte: Path, tokenizer: Path, ptd: Path, prompt: str) -> tuple[str, dict]:
    """(the text TextLLMRunner generated, its stats) for a prompt it tokenizes itself."""
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(pte), str(tokenizer), str(ptd), str(NEW_TOKENS)],
        input=prompt.encode(),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    match = STATS.search(done.stdout)
    assert match, done.stdout
    return done.stdout[: match.start()].decode("utf-8", errors="replace"), json.loads(match[1])


def visible_ascii(text: str, specials: list[str] = ()) -> str:
    """The printable ASCII of a text, without special tokens. TextLLMRunner prints each
    token's bytes on their own and skips a piece that is not whole UTF-8 (part of a
    character split across tokens), and prints special tokens; lora-tui decodes the stream,
    joins such pieces and hides special tokens. A random tiny model emits many of both.
    Everything else must be the same."""
    for special in specials:
        text = text.replace(special, "")
    return "".join(c for c in text if " " <= c <= "~")
