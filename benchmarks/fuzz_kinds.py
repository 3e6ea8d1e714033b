"""What ``benchmarks/fuzz_inputs.py`` feeds the public commands: for each kind of input,
the file it mutates (the fields each reader looks at, and the odd values to try there) and
the commands that read it, over a case folder of hard links to the healthy fixtures.

The commands replace files by rename and never write into them, so hard links are safe;
the mutated file is unlinked first and written anew."""

from __future__ import annotations

import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.fuzz_fixtures import EVAL_TOKENS, Fixtures
from tests.support import mutations
from tests.support.mutations import (
    BAD_REGEXES,
    BAD_TEMPLATES,
    CATASTROPHIC_REGEXES,
    LONG,
    MARKUP,
    Mutated,
    Targets,
)

BIN = Path(sys.executable).parent
NAN = float("nan")

# --- the commands ---------------------------------------------------------------------------

# The app without a terminal, at 120 x 40: at the 80 x 24 a headless driver falls back to,
# it kept laying out and never took SIGTERM (in a terminal of 80 x 24 it does). It is quit
# once it has drawn its panes (``fuzz_inputs.run_limited``).
HEADLESS_APP = {
    "TEXTUAL_DRIVER": "textual.drivers.headless_driver:HeadlessDriver",
    "COLUMNS": "120",
    "LINES": "40",
}
APP_RESULTS = "app.jsonl"  # the app opens it once its checks before launch passed
# The app's "export results" (what the palette runs: ResultsWriter's export), each format.
EXPORT_RESULTS = """
import sys
from pathlib import Path
from lora_tui.judging.results import EXPORT_FORMATS, ResultsWriter

failed = []
writer = ResultsWriter(Path(sys.argv[1]), lambda text, ok: ok or failed.append(text))
for fmt in EXPORT_FORMATS:
    writer._export(fmt)
writer.close()
if failed:
    sys.exit(f"export results: {failed[0]}")
"""


@dataclass
class Inputs:
    """A case's files: links to the healthy fixtures, one of them replaced."""

    weights: Path
    program: Path
    tokenizer: Path | None
    base: Path
    adapter: Path
    out: Path
    prompts: Path
    results: Path


def command(name: str, inputs: Inputs, case: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment of a public command over the case's inputs."""
    lora_tui = str(BIN / "lora-tui")
    programs = ["--weights", str(inputs.weights), str(inputs.program)]
    programs += ["--tokenizer", str(inputs.tokenizer)] if inputs.tokenizer else []
    tokens = ["--max-new-tokens", str(EVAL_TOKENS)]
    if name == "bench":
        return [lora_tui, "bench", *programs, "--max-new-tokens", "2"], {}
    if name == "eval":
        return [lora_tui, "eval", *programs, "--prompts", str(inputs.prompts), *tokens], {}
    if name == "compare":
        return [lora_tui, "compare", *programs, "--results", str(case / APP_RESULTS)], HEADLESS_APP
    if name == "eval --resume":
        resume = ["--prompts", str(inputs.prompts), "--out", str(inputs.results), "--resume"]
        return [lora_tui, "eval", *programs, *resume, *tokens], {}
    if name == "export results":
        return [sys.executable, "-P", "-c", EXPORT_RESULTS, str(inputs.results)], {}
    if name == "lora-export":
        argv = [str(BIN / "lora-export"), "--base", str(inputs.base)]
        argv += ["--adapter", f"full={inputs.adapter}", "--out", str(inputs.out)]
        return argv + ["--max-context", "128"], {}
    raise ValueError(name)


# --- what each reader looks at --------------------------------------------------------------

MANIFEST_TARGETS: Targets = [
    (("format",), ["[/]", "3", 3.0, None, [3], 4, -1]),
    (("foundation_size_bytes",), ["48", -1, 0, 2**70, 1.5, None, "[/]"]),
    (("foundation_file",), ["[/]", "../../etc/passwd", "", "\x1b[2Jx.ptd", 5]),
    (("foundation_id",), ["x", -1, 2**80, None]),
    (("max_context",), [0, -1, 2**40, "128", None]),
    (("bos_id",), [-1, 2**40, "1", [1]]),
    (("stop_ids",), [[-1], [2**40], "2", [[2]], list(range(100000)), None]),
    (("chat_template",), BAD_TEMPLATES),
    (("quantization",), ["none", {"mode": "8da4w", "group_size": 0}, {"mode": "[/]"}, []]),
    (("shape",), [[], "x", {"dim": -1}, {"n_heads": 0}]),
    (("shape", "n_layers"), [200000000, -1, "2"]),
    (
        ("programs",),
        [[], "x", {"full": []}, {"[/]": {"file": "[/].pte", "kind": "adapter", "size_bytes": 1}}],
    ),
    (("programs", "full", "rank"), [65536, -8, 0, "x", 2**70]),
    (("programs", "full", "alpha"), ["nan", "x", -1, 1e308]),
    (("programs", "full", "target_modules"), ["q_proj", [5], ["[/]"], None]),
    (("programs", "full", "size_bytes"), ["48", -1, 2**70]),
    (("programs", "full", "sha256"), ["[/]", 5, ["x"]]),
    (("programs", "full", "kind"), ["[/]", "base", 5]),
    (("programs", "full", "adapter_size_bytes"), ["x", -1, 2**70]),
    (("programs", "full", "file"), ["[/]", "../full.pte", 5]),
]
ADAPTER_TARGETS: Targets = [
    (("r",), [0, -8, 65536, "x", "8", 8.5, None, 2**70]),
    (("lora_alpha",), ["nan", "x", -16, 0, 1e308, [16], NAN]),
    (
        ("rank_pattern",),
        [
            {r: 8 for r in CATASTROPHIC_REGEXES[:1]},
            {"(": 8},
            {"q_proj": 65536},
            {"q_proj": "x"},
            [8],
            "x",
        ],
    ),
    (
        ("alpha_pattern",),
        [{CATASTROPHIC_REGEXES[1]: 8}, {"[": 8}, {"q_proj": "nan"}, {"q_proj": NAN}],
    ),
    (("target_modules",), [CATASTROPHIC_REGEXES[0], ".*", "(", 5, [5], {"q_proj": 1}, MARKUP[0]]),
    (("layers_to_transform",), [[10**9], -1, "x"]),
    (("use_rslora",), ["false", 1, [True]]),
    (("peft_type",), ["[/]", 5, "LOHA", None]),
    (("bias",), ["[/]", 5, "all"]),
    (("use_dora",), ["yes", 1]),
    (("modules_to_save",), [["lm_head"], "[/]"]),
]
CONFIG_TARGETS: Targets = [
    (("num_hidden_layers",), [200000000, 0, -1, "2", 2.5, None]),
    (("num_attention_heads",), [0, -4, 3, 200000000, "4"]),
    (("num_key_value_heads",), [0, 3, -2, 200000000]),
    (("hidden_size",), [0, -512, 513, 2**40, "512"]),
    (("head_dim",), [0, -1, 127, 2**40]),
    (("intermediate_size",), [0, -1, 2**40, "x"]),
    (("vocab_size",), [0, -1, 10**12]),
    (("rms_norm_eps",), ["x", -1, NAN]),
    (
        ("rope_parameters",),
        [
            {"rope_type": "llama3", "factor": 0},
            {"rope_type": "yarn", "factor": -1},
            {"rope_theta": 0},
            {"rope_type": "[/]"},
            "x",
            [],
        ],
    ),
    (("rope_parameters", "rope_theta"), [0, -1, NAN, "x"]),
    (("model_type",), ["[/]", 5, "qwen3", None]),
    (("architectures",), [["[/]"], "LlamaForCausalLM", 5]),
    (("eos_token_id",), [-1, 2**40, "2", [[2]], list(range(100000))]),
    (("bos_token_id",), [-1, 2**40, "1"]),
    (("hidden_act",), ["[/]", 5]),
    (("tie_word_embeddings",), [False, "no"]),
    (("max_position_embeddings",), [0, -1, 2**40]),
]
TOKENIZER_CONFIG_TARGETS: Targets = [
    (
        ("chat_template",),
        [
            *BAD_TEMPLATES,
            5,
            [],
            [{"name": "default", "template": BAD_TEMPLATES[0]}],
            [{"name": 5}],
            [5],
        ],
    ),
    (("eos_token",), ["[/]", 5, {"content": 5}, {"content": "[/]"}, ["<|im_end|>"], None]),
    (("bos_token",), ["[/]", 5, {"content": None}, []]),
    (("pad_token",), ["[/]", 5]),
    (("tokenizer_class",), ["[/]", 5]),
    (("model_max_length",), [-1, 2**70, "x"]),
]
TOKENIZER_JSON_TARGETS: Targets = [
    (
        ("pre_tokenizer",),
        [
            {"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": False}
            for r in CATASTROPHIC_REGEXES[:2]
        ]
        + [{"type": "[/]"}, 5],
    ),
    (
        ("normalizer",),
        [
            {"type": "Replace", "pattern": {"Regex": CATASTROPHIC_REGEXES[2]}, "content": "x"},
            {"type": "Sequence", "normalizers": [{"type": "Lowercase"}] * 1000},
            "x",
        ],
    ),
    (("model", "type"), ["Unigram", "WordPiece", "[/]", 5]),
    (("model", "vocab"), [{}, [], {"a": -1}, {"a": 2**40}]),
    (("model", "merges"), [[["a"]], [5], "x", [LONG]]),
    (
        ("added_tokens",),
        [
            [{"id": 2**40, "content": "[/]", "special": True}],
            [{"id": -1, "content": "x"}],
            [5],
            "x",
        ],
    ),
    (("decoder",), [{"type": "[/]"}, 5, None]),
    (
        ("truncation",),
        [{"max_length": -1, "strategy": "LongestFirst", "stride": 0, "direction": "Right"}, "x"],
    ),
    (("padding",), [{"strategy": {"Fixed": 2**40}}, "x"]),
]
PROMPT_TARGETS: Targets = [
    (("regex",), [*CATASTROPHIC_REGEXES, *BAD_REGEXES, 5, [".*"], ""]),
    (("prompt",), [*MARKUP, LONG, "", 5, ["x"], {"x": 1}, None]),
    (("keywords",), [[5], "x", {"a": 1}, [MARKUP[1]], [LONG], ["a"] * 100000]),
    (("group",), [*MARKUP[:3], {"a": 1}, [1], None, LONG]),
    (("fact",), [*MARKUP[:3], {"a": 1}, 5]),
    (("question",), ["[/INST]", 5]),
]
RESULTS_TARGETS: Targets = [
    (("end",), ["x", None, 5, "[/]"]),
    (("answer",), [5, None, ["x"], {"x": 1}, *MARKUP[:3], LONG]),
    (("prompt",), [5, None, ["x"], {"x": 1}, *MARKUP[:3], LONG]),
    (("settings",), ["x", [1], None, {"temperature": "x"}, {"max_new_tokens": -1}]),
    (("program_sha256",), [5, ["x"], {"x": 1}, None]),
    (("adapter",), [5, None, ["x"], *MARKUP[:3]]),
    (("type",), ["vote", "[/]", 5]),
    (("round",), [["x"], {"x": 1}, None]),
    (("verdict",), [5, ["x"], "[/]", None]),
    (("adapters",), [5, "x", [5], None]),
    (("vote",), [5, ["x"], "[/]"]),
    (("decode_tok_s",), ["x", NAN, -1, 2**70]),
    (("new_tokens",), ["x", -1]),
]


TARGETS: dict[str, Targets] = {
    "manifest.json": MANIFEST_TARGETS,
    "adapter_config.json": ADAPTER_TARGETS,
    "config.json": CONFIG_TARGETS,
    "tokenizer.json": TOKENIZER_JSON_TARGETS,
    "tokenizer_config.json": TOKENIZER_CONFIG_TARGETS,
    "prompts.jsonl": PROMPT_TARGETS,
    "results.jsonl": RESULTS_TARGETS,
}


def mutate_file(name: str, data: bytes, rng: random.Random, pick: int | None) -> Mutated:
    """The ``pick``-th targeted change of that file, or a random one."""
    if name.endswith(".gguf"):
        return mutations.mutate_gguf(data, rng, pick)
    if name.endswith(".jsonl"):
        return mutations.mutate_jsonl(data, rng, TARGETS[name], pick)
    return mutations.mutate_json_file(data, rng, TARGETS[name], pick)


# --- the kinds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    commands: tuple[str, ...]  # that read the file; the cases take turns (command_for)
    files: tuple[str, ...]  # in the case folder; each case mutates one of them
    base: str = "base"  # what lora-export is given as the base
    bare: bool = False  # the programs without their manifest: the tokenizer folder is read

    def command_for(self, index: int) -> str:
        """Cases 2k (targeted) and 2k+1 (random) run the same command; the commands take
        turns along k, so each command sees both."""
        return self.commands[(index // 2) % len(self.commands)]


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("manifest", ("bench", "eval", "compare", "lora-export"), ("out/manifest.json",)),
        Kind("adapter_config", ("lora-export",), ("adapter/adapter_config.json",)),
        Kind("config", ("lora-export", "bench", "eval"), ("base/config.json",), bare=True),
        Kind("gguf", ("lora-export",), ("tiny.gguf",), base="tiny.gguf"),
        Kind(
            "tokenizer",
            ("bench", "eval", "compare", "lora-export"),
            ("base/tokenizer.json", "base/tokenizer_config.json"),
            bare=True,
        ),
        Kind("prompts", ("eval",), ("prompts.jsonl",)),
        Kind("results", ("eval --resume", "export results"), ("results.jsonl",)),
    )
}


def prepare(
    kind: Kind, fixtures: Fixtures, case: Path, index: int, rng: random.Random
) -> tuple[Inputs, str]:
    """The case folder: every healthy input linked in, one file of the kind mutated: every
    other case (the even ones) by the next targeted value of the file's fields, in turn,
    the others at random. Returns the inputs and what was changed."""
    for name in ("out", "base", "adapter"):
        shutil.copytree(getattr(fixtures, name), case / name, copy_function=os.link)
    for source in (fixtures.gguf, fixtures.prompts, fixtures.results):
        os.link(source, case / source.name)
    programs = fixtures.bare if kind.bare else case / "out"
    inputs = Inputs(
        weights=programs / "foundation.ptd",
        program=programs / "full.pte",
        tokenizer=case / "base" if kind.bare else None,
        base=case / kind.base,
        adapter=case / "adapter",
        out=case / "out",
        prompts=case / "prompts.jsonl",
        results=case / "results.jsonl",
    )
    if index % 2 == 0:
        turn = index // 2
        name, pick = kind.files[turn % len(kind.files)], turn // len(kind.files)
    else:
        name, pick = rng.choice(kind.files), None
    target = case / name
    data, what = mutate_file(target.name, target.read_bytes(), rng, pick)
    target.unlink()  # a link to the fixture: write a file of its own
    target.write_bytes(data)
    return inputs, f"{target.name}: {what}"
