"""What a quantization (8da4w, 8da8w) costs against fp32 PEFT, per adapter: top-1
agreement and mean KL over teacher-forced held-out text, whether the LoRA effect is kept,
and the eval questions.

    .venv/bin/python -m benchmarks.quant_fidelity [--quantize 8da8w | --folder DIR] [--questions N]

DIR is a folder lora-export wrote with ``--quantize`` and ``--base-program`` from the
demo's base and adapters (default: ``lora-tui demo --quantize MODE``'s cache, 8da4w unless
``--quantize`` says otherwise). Figures go to ``benchmarks/results/quant_fidelity_MODE.json``.

The held-out text: N questions from each adapter's eval set (``lora_tui/demo/assets/eval/``,
never trained on), each in the chat template followed by fp32 PEFT's own greedy answer (up
to 48 tokens). The fp32 PEFT model and the 8da4w program read the same tokens, and at
every answer position their next-token distributions are compared: top-1 agreement and
mean KL(fp32 PEFT || 8da4w). The same is measured for the 8da4w *base* program against the
fp32 adapter: if the quantized adapter agrees with its fp32 self far more than the
quantized base does, quantization kept what the LoRA learned. Last, every 8da4w program
answers all eval questions greedily (``lora-tui eval``'s scoring): each adapter must beat
the quantized base on its own questions.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from benchmarks import markdown
from benchmarks.peft_reference import load_peft
from benchmarks.record import write_results
from exporter.smollm2 import fetch_smollm2_gguf
from lora_tui.common.native_output import native_output_to
from lora_tui.demo.build import (
    DEMO_ADAPTERS,
    DemoBuild,
    demo_folder,
    demo_quantization,
    eval_set,
    shipped_adapters,
)
from lora_tui.demo.build import eval_questions as held_out_questions
from lora_tui.engine import GenerationSettings, ModelHost
from lora_tui.engine.paths import cache_dir
from lora_tui.format import BASE_PROGRAM
from lora_tui.judging.evaluate import Loaded, LocalBackend, Program, load_prompts, run_eval

ANSWER_TOKENS = 48


def held_out_sequences(model, tokenizer, questions: list[str]) -> list[tuple[list[int], int]]:
    """(tokens, where the answer starts) per question: its chat prompt and the fp32 model's
    greedy answer."""
    sequences = []
    for question in questions:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
        prompt = tokenizer(text, add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(
                torch.tensor([prompt]), max_new_tokens=ANSWER_TOKENS, do_sample=False
            )
        sequences.append((out[0].tolist(), len(prompt)))
    return sequences


def reference_logits(model, sequences) -> list[torch.Tensor]:
    with torch.no_grad():
        return [model(torch.tensor([tokens])).logits[0].float() for tokens, _ in sequences]


def compare(host: ModelHost, name: str, sequences, references) -> tuple[float, float, int]:
    """(top-1 agreement, mean KL(reference || program), positions) over the answers."""
    session = host.sessions[name]
    chunk = session.facts.max_prefill
    agree, kl, positions = 0, 0.0, 0
    for (tokens, start), reference in zip(sequences, references, strict=True):
        # The prompt in chunks, then one answer token per call: a program returns the
        # logits of its last position only.
        for offset in range(0, start, chunk):
            logits = session.forward(tokens[offset : min(offset + chunk, start)], offset)
        for position in range(start, len(tokens)):
            ours = logits.float()
            theirs = reference[position - 1]
            agree += int(ours.argmax() == theirs.argmax())
            kl += float(
                torch.nn.functional.kl_div(
                    ours.log_softmax(-1), theirs.log_softmax(-1), log_target=True, reduction="sum"
                )
            )
            positions += 1
            if position < len(tokens) - 1:
                logits = session.forward([tokens[position]], position)
    return agree / positions, kl / positions, positions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--quantize", choices=("8da4w", "8da8w"), default="8da4w")
    where.add_argument("--folder", type=Path, help="a lora-export folder (default: the demo's)")
    parser.add_argument("--questions", type=int, default=12, help="per eval set (default 12)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    build = DemoBuild(args.folder or demo_folder(demo_quantization(args.quantize)), None)
    quantization = build.manifest.quantized
    if quantization.mode == "none":
        raise SystemExit(f"{build.folder}: an fp32 build; nothing to compare")
    with native_output_to(Path(os.devnull)):
        host = ModelHost(build.weights)
        programs = {path.stem: path for path in build.programs}
        for path in programs.values():
            host.load(path)
        host.end_checks()
    report = {
        "quantization": quantization.label,
        "questions_per_set": args.questions,
        "teacher_forced": teacher_forced(host, quantization.label, args.questions),
        "eval": eval_scores(host, quantization.label, programs),
    }
    write_results(f"quant_fidelity_{quantization.mode}", report)


def teacher_forced(host: ModelHost, mode: str, per_set: int) -> list[dict]:
    """Each adapter's and the base's program against the fp32 PEFT adapter, on its text."""
    gguf = fetch_smollm2_gguf(cache_dir() / "model")
    questions = [
        row["question"] for name in DEMO_ADAPTERS for row in held_out_questions(name)[:per_set]
    ]
    print(
        f"teacher-forced: {len(questions)} eval questions ({per_set} per set), "
        f"each followed by the fp32 PEFT adapter's greedy answer"
    )
    print(f"{'adapter':<12}{'program':<18}{'top-1 agreement':>16}{'mean KL':>10}{'positions':>11}")
    rows = []
    for name in DEMO_ADAPTERS:
        model, tokenizer = load_peft(gguf, shipped_adapters()[name])
        sequences = held_out_sequences(model, tokenizer, questions)
        references = reference_logits(model, sequences)
        for program in (name, BASE_PROGRAM):
            with native_output_to(Path(os.devnull)):
                agreement, kl, positions = compare(host, program, sequences, references)
            label = f"{program} {mode}"
            print(f"{name:<12}{label:<18}{agreement:>16.1%}{kl:>10.4f}{positions:>11}")
            row = {"adapter": name, "program": program, "top1_agreement": round(agreement, 4)}
            rows.append({**row, "mean_kl": round(kl, 4), "positions": positions})
    return rows


def eval_scores(host: ModelHost, mode: str, programs: dict[str, Path]) -> dict:
    """Every program on every eval question, greedy: right and asked, by question set."""
    cases = load_prompts([eval_set(name) for name in DEMO_ADAPTERS])
    settings = GenerationSettings(temperature=0.0, max_new_tokens=128)
    with native_output_to(Path(os.devnull)):
        loaded = [Loaded(Program(name, path), host) for name, path in programs.items()]
        scores = run_eval(LocalBackend(loaded), cases, settings)
    print(f"\nthe {mode} programs on all the eval questions (right / asked)")
    print(f"{'questions':<12}" + "".join(f"{name:>12}" for name in programs))
    by_set = {}
    for group in scores.groups:
        cells = "".join(f"{'{}/{}'.format(*scores.score(group, n)):>12}" for n in programs)
        print(f"{group:<12}{cells}")
        by_set[group] = {n: list(scores.score(group, n)) for n in programs}
    for name in DEMO_ADAPTERS:
        own, base = scores.score(name, name)[0], scores.score(name, BASE_PROGRAM)[0]
        verdict = "beats" if own > base else "DOES NOT beat"
        print(f"{name} {mode} {verdict} the {mode} base on its own questions ({own} vs {base})")
    return by_set


# --- the docs' table (benchmarks/tables.py puts it in its page) ---


def quant_fidelity_table(report: dict) -> list[str]:
    mode = report["quantization"]
    head = [
        "fp32 PEFT adapter",
        "program",
        "top-1 agreement",
        "mean KL",
        "positions",
        "the adapter's eval questions right",
    ]
    lines = markdown.head(head)
    for row in report["teacher_forced"]:
        adapter, program = row["adapter"], row["program"]
        agreement = f"{row['top1_agreement']:.1%}"
        right, asked = report["eval"][adapter][program]
        if program == adapter:
            agreement, right = f"**{agreement}**", f"**{right}**"
        cells = [f"`{adapter}`", f"`{program}` {mode}", agreement, f"{row['mean_kl']:.3f}"]
        lines.append(markdown.row([*cells, row["positions"], f"{right}/{asked}"]))
    return lines


if __name__ == "__main__":
    main()
