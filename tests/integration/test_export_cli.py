"""lora-export's command line: artifacts, adding adapters later, and every kind of bad input."""

from __future__ import annotations

import json
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from exporter import cli
from exporter.base import PROJECTIONS
from exporter.errors import ExportError
from exporter.pipeline import ExportRequest, run_export
from exporter.splice import TEMPLATE_VERSION
from lora_tui.format import Manifest
from tests.support.artifacts import ALL_TARGETS, MAX_CONTEXT, TinyArtifacts
from tests.support.programs import chat_prompt, peft_greedy, program_greedy
from tests.support.tiny import build_adapter, build_base


def run_cli(args: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capfd.readouterr()  # drop what building the fixtures printed
    code = cli.main(args)
    captured = capfd.readouterr()
    return code, captured.out + captured.err


def assert_one_line_error(code: int, output: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    assert lines[0].startswith("lora-export: error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- what a good run writes ---------------------------------------------------------------


def test_output_folder_has_everything_lora_tui_needs(tiny_artifacts: TinyArtifacts) -> None:
    out = tiny_artifacts.out
    names = {p.name for p in out.iterdir()}
    assert {"foundation.ptd", "full.pte", "partial.pte", "base.pte"} <= names
    assert {"manifest.json", "tokenizer.json", "tokenizer_config.json"} <= names
    left_behind = [n for n in names if n.startswith(".") and n != ".templates"]
    assert not left_behind, "staging or partial files left behind"
    # One lowered template per rank and set of targets; each adapter is filled into one.
    templates = sorted(p.name for p in (out / ".templates").iterdir())
    v = f"v{TEMPLATE_VERSION}"
    assert templates == [
        f"{v}-r4-q_proj.v_proj.down_proj.pte",
        f"{v}-r8-{'.'.join(PROJECTIONS)}.pte",
    ]
    manifest = Manifest.read(out)
    assert manifest.stop_ids and 2 in manifest.stop_ids  # <|im_end|>
    assert "<|im_start|>" in (manifest.chat_template or "")
    assert manifest.max_context == MAX_CONTEXT
    full = manifest.programs["full"]
    assert (full.kind, full.rank, full.alpha) == ("adapter", 8, 16.0)
    assert full.target_modules == list(PROJECTIONS)  # all seven, in ExecuTorch's order
    assert len(full.source_sha256 or "") == 64
    partial = manifest.programs["partial"]
    assert (partial.rank, partial.alpha, partial.target_modules) == (
        4,
        32.0,
        ["q_proj", "v_proj", "down_proj"],
    )
    assert manifest.programs["base"].kind == "base"
    assert len(manifest.foundation_sha256) == 64 and len(manifest.base_fingerprint) == 64


def test_program_holds_only_its_adapter(tiny_artifacts: TinyArtifacts) -> None:
    # The .pte carries the LoRA weights; the base weights live only in the .ptd.
    foundation = tiny_artifacts.foundation.stat().st_size
    for name in ("full", "partial"):
        program = tiny_artifacts.program(name).stat().st_size
        adapter = (tiny_artifacts.adapters[name] / "adapter_model.safetensors").stat().st_size
        assert program < foundation / 2
        assert program < adapter * 2 + 64 * 1024


def test_cli_prints_size_table(
    tiny_base: Path,
    tiny_adapters: dict[str, Path],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    args = ["--base", str(tiny_base), "--adapter", f"mine={tiny_adapters['partial']}"]
    code, output = run_cli([*args, "--out", str(out), "--max-context", str(MAX_CONTEXT)], capfd)
    assert code == 0, output
    assert "foundation.ptd" in output and "mine.pte" in output
    assert "Traceback" not in output and "executorch:" not in output
    assert (out / "mine.pte").is_file()


def test_adding_an_adapter_later_keeps_the_foundation(
    tiny_artifacts: TinyArtifacts, tiny_base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    foundation_before = (out / "foundation.ptd").stat()
    full_before = (out / "full.pte").stat().st_mtime_ns
    # Same rank and targets as "full": filled into the folder's template, nothing lowered.
    twin = build_adapter(tiny_base, tmp_path / "twin", r=8, alpha=4, targets=ALL_TARGETS, seed=8)
    # A rank and targets the folder has no template for: one template is lowered.
    extra = build_adapter(tiny_base, tmp_path / "extra", r=2, alpha=4, targets=["o_proj"], seed=9)
    result = run_export(
        ExportRequest(
            tiny_base,
            [("twin", twin), ("extra", extra), ("full", tiny_artifacts.adapters["full"])],
            out,
            max_context=MAX_CONTEXT,
        )
    )
    assert result.reused_foundation and result.built == ["twin", "extra"]  # full is up to date
    assert [p for p in result.phase_seconds if p.startswith("export")] == [
        f"export template v{TEMPLATE_VERSION}-r2-o_proj"
    ]
    foundation_after = (out / "foundation.ptd").stat()
    assert foundation_after.st_mtime_ns == foundation_before.st_mtime_ns
    assert foundation_after.st_ino == foundation_before.st_ino
    assert (out / "full.pte").stat().st_mtime_ns == full_before
    assert set(Manifest.read(out).programs) == {"full", "partial", "base", "twin", "extra"}
    # The new programs run over the foundation that was already there.
    prompt = chat_prompt(tiny_base, "Hello")
    for name, adapter in (("twin", twin), ("extra", extra)):
        want, _ = peft_greedy(tiny_base, adapter, prompt, 8)
        got, _ = program_greedy(out / f"{name}.pte", out / "foundation.ptd", prompt, 8)
        assert got == want, name


def test_damaged_template_is_lowered_again(
    tiny_artifacts: TinyArtifacts, tiny_base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    (template,) = (out / ".templates").glob(f"v{TEMPLATE_VERSION}-r8-*.pte")
    template.write_bytes(template.read_bytes()[:-16])  # a cut-off end
    twin = build_adapter(tiny_base, tmp_path / "twin", r=8, alpha=4, targets=ALL_TARGETS, seed=8)
    result = run_export(ExportRequest(tiny_base, [("twin", twin)], out, max_context=MAX_CONTEXT))
    assert [p for p in result.phase_seconds if p.startswith("export")] == [
        f"export template {template.stem}"
    ]
    prompt = chat_prompt(tiny_base, "Hello")
    want, _ = peft_greedy(tiny_base, twin, prompt, 8)
    got, _ = program_greedy(out / "twin.pte", out / "foundation.ptd", prompt, 8)
    assert got == want


def test_failed_run_leaves_output_untouched(
    tiny_artifacts: TinyArtifacts,
    tiny_base: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    before = folder_contents(out)
    extra = build_adapter(tiny_base, tmp_path / "extra", r=2, alpha=4, targets=["o_proj"], seed=9)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("exporter.pipeline.lower_program", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_export(ExportRequest(tiny_base, [("extra", extra)], out, max_context=MAX_CONTEXT))
    assert folder_contents(out) == before


def test_fresh_failed_run_creates_no_files(
    tiny_base: Path,
    tiny_adapters: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    import exporter.lower

    real = exporter.lower.lower_program
    calls = []

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr("exporter.pipeline.lower_program", fail_second)
    with pytest.raises(RuntimeError):
        run_export(ExportRequest(tiny_base, list(tiny_adapters.items()), out, max_context=32))
    assert list(out.iterdir()) == []


# --- bad input: one clear line, non-zero exit, nothing written ------------------------------


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "never-written"


def expect_refusal(args: list[str], out: Path, capfd, *needles: str) -> None:
    code, output = run_cli([*args, "--out", str(out)], capfd)
    assert_one_line_error(code, output, *needles)
    assert not out.exists() or not list(out.iterdir())


def test_missing_base(tmp_path: Path, tiny_adapters, out_dir: Path, capfd) -> None:
    missing = tmp_path / "nope"
    expect_refusal(
        ["--base", str(missing), "--adapter", str(tiny_adapters["full"])],
        out_dir,
        capfd,
        str(missing),
        "no such file",
    )


def test_the_log_is_in_the_users_state_folder_never_in_tmp(
    tmp_path: Path, tiny_adapters, out_dir: Path, capfd, monkeypatch
) -> None:
    """A fixed /tmp/lora-export.log was another user's to own (a PermissionError here) or
    to plant a symlink at (issue 42)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    missing = tmp_path / "nope"
    args = ["--base", str(missing), "--adapter", str(tiny_adapters["full"])]
    expect_refusal(args, out_dir, capfd)
    state = tmp_path / "state" / "lora-tui"
    assert (state / "lora-export.log").is_file()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert list((tmp_path / "tmp").iterdir()) == []


def test_missing_adapter(tiny_base: Path, tmp_path: Path, out_dir: Path, capfd) -> None:
    missing = tmp_path / "gone"
    expect_refusal(
        ["--base", str(tiny_base), "--adapter", str(missing)],
        out_dir,
        capfd,
        str(missing),
        "no such directory",
    )


def test_truncated_base_weights(tiny_base: Path, tiny_adapters, tmp_path: Path, out_dir, capfd):
    broken = tmp_path / "broken-base"
    shutil.copytree(tiny_base, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    expect_refusal(
        ["--base", str(broken), "--adapter", str(tiny_adapters["full"])],
        out_dir,
        capfd,
        str(weights),
        "corrupt or truncated",
    )


def test_truncated_adapter_weights(tiny_base: Path, tiny_adapters, tmp_path, out_dir, capfd):
    broken = tmp_path / "broken-adapter"
    shutil.copytree(tiny_adapters["full"], broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    expect_refusal(
        ["--base", str(tiny_base), "--adapter", str(broken)],
        out_dir,
        capfd,
        str(weights),
        "corrupt or truncated",
    )


def test_truncated_gguf(tmp_path: Path, tiny_adapters, out_dir: Path, capfd) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x07" * 40)
    expect_refusal(
        ["--base", str(gguf), "--adapter", str(tiny_adapters["full"])],
        out_dir,
        capfd,
        str(gguf),
        "corrupt or truncated GGUF",
    )


def test_non_llama_gguf(tmp_path: Path, tiny_adapters, out_dir: Path, capfd) -> None:
    from gguf import GGUFWriter

    gguf = tmp_path / "gpt2.gguf"
    writer = GGUFWriter(str(gguf), "gpt2")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    expect_refusal(
        ["--base", str(gguf), "--adapter", str(tiny_adapters["full"])],
        out_dir,
        capfd,
        str(gguf),
        "GGUF architecture 'gpt2' is not supported",
    )


def test_non_llama_base(tiny_base: Path, tiny_adapters, tmp_path: Path, out_dir, capfd) -> None:
    other = tmp_path / "gpt2-base"
    shutil.copytree(tiny_base, other)
    config = json.loads((other / "config.json").read_text())
    config.update(model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (other / "config.json").write_text(json.dumps(config))
    expect_refusal(
        ["--base", str(other), "--adapter", str(tiny_adapters["full"])],
        out_dir,
        capfd,
        "config.json",
        "model_type 'gpt2' is not supported",
    )


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope scaling 'dynamic'"),
        ({"rope_scaling": {"rope_type": "longrope", "factor": 2.0}}, "rope scaling 'longrope'"),
        ({"use_sliding_window": True}, "sliding-window attention is not supported"),
        ({"attention_bias": True}, "attention_bias=true"),
    ],
    ids=["dynamic-rope", "longrope", "sliding-window", "attention-bias"],
)
def test_unsupported_variant_refused(
    tiny_base: Path, tiny_adapters, tmp_path: Path, out_dir, capfd, change, needle
) -> None:
    other = tmp_path / "variant"
    shutil.copytree(tiny_base, other)
    config = json.loads((other / "config.json").read_text())
    # As the Hub's configs have it: rope_scaling beside rope_theta.
    config["rope_theta"] = config.pop("rope_parameters")["rope_theta"]
    config.update(change)
    (other / "config.json").write_text(json.dumps(config))
    expect_refusal(
        ["--base", str(other), "--adapter", str(tiny_adapters["full"])],
        out_dir,
        capfd,
        "config.json",
        needle,
    )


@pytest.fixture(scope="session")
def other_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("other") / "base", n_layers=3, dim=96, seed=5)


def test_adapter_for_another_base(tiny_base: Path, other_base: Path, tmp_path, out_dir, capfd):
    foreign = build_adapter(other_base, tmp_path / "foreign", r=4, alpha=8, seed=4)
    expect_refusal(
        ["--base", str(tiny_base), "--adapter", str(foreign)],
        out_dir,
        capfd,
        "adapter_model.safetensors",
        "adapter for another base",
    )


def test_adapter_with_too_many_layers(tiny_base: Path, tiny_adapters, tmp_path, out_dir, capfd):
    from safetensors.torch import load_file, save_file

    deeper = tmp_path / "deeper"
    shutil.copytree(tiny_adapters["full"], deeper)
    weights = load_file(deeper / "adapter_model.safetensors")
    for key in list(weights):
        if ".layers.1." in key:
            weights[key.replace(".layers.1.", ".layers.7.")] = weights[key].clone()
    save_file(weights, deeper / "adapter_model.safetensors")
    expect_refusal(
        ["--base", str(tiny_base), "--adapter", str(deeper)],
        out_dir,
        capfd,
        "layer 7",
        "the base has 2 layers",
    )


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"lora_bias": True}, "LoRA bias"),
        ({"bias": "all"}, "bias='all'"),
        ({"target_modules": ["q_proj", "embed_tokens"]}, "embed_tokens"),
        ({"target_modules": ["lm_head"]}, "lm_head"),
        ({"peft_type": "IA3"}, "adapter type IA3"),
    ],
)
def test_unsupported_adapter_feature(
    tiny_base: Path, tiny_adapters, tmp_path: Path, out_dir: Path, capfd, edit, needle
) -> None:
    adapter = tmp_path / "odd"
    shutil.copytree(tiny_adapters["partial"], adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config.update(edit)
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    expect_refusal(
        ["--base", str(tiny_base), "--adapter", str(adapter)],
        out_dir,
        capfd,
        "adapter_config.json",
        needle,
    )


def test_dora_weights_refused(tiny_base: Path, tmp_path: Path, out_dir: Path, capfd) -> None:
    dora = build_adapter(
        tiny_base, tmp_path / "dora", r=4, alpha=8, targets=["q_proj"], use_dora=True
    )
    expect_refusal(["--base", str(tiny_base), "--adapter", str(dora)], out_dir, capfd, "DoRA")


def test_pickled_adapter_refused(tiny_base: Path, tiny_adapters, tmp_path, out_dir, capfd):
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_adapters["partial"], pickled)
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    expect_refusal(
        ["--base", str(tiny_base), "--adapter", str(pickled)],
        out_dir,
        capfd,
        "adapter_model.bin",
        "safetensors",
    )


def test_out_dir_with_another_foundation(
    tiny_artifacts: TinyArtifacts, tiny_base: Path, tmp_path: Path, capfd
) -> None:
    other = tmp_path / "reseeded"
    build_base(other, seed=11)
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, output = run_cli(
        [
            "--base",
            str(other),
            "--adapter",
            str(tiny_artifacts.adapters["partial"]),
            "--out",
            str(out),
            "--max-context",
            str(MAX_CONTEXT),
        ],
        capfd,
    )
    assert_one_line_error(code, output, "foundation.ptd", "different base")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_bad_adapter_names(tiny_base: Path, tiny_adapters) -> None:
    with pytest.raises(ExportError, match="given twice"):
        run_export(ExportRequest(tiny_base, [("a", tiny_adapters["full"])] * 2, Path("x")))
    with pytest.raises(ExportError, match="reserved"):
        run_export(
            ExportRequest(
                tiny_base, [("base", tiny_adapters["full"])], Path("x"), base_program=True
            )
        )


# --- bounded work on a stranger's files (issue 42) ---------------------------------------------


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"num_hidden_layers": 200000000}, "says 200000000 layers, the weights hold 2"),
        ({"num_attention_heads": 0}, "num_attention_heads must be a positive integer, not 0"),
    ],
    ids=["200000000-layers", "no-heads"],
)
def test_a_base_config_that_does_not_fit_its_weights(
    tiny_base: Path, tiny_adapters, tmp_path: Path, out_dir, capfd, change, needle
) -> None:
    other = tmp_path / "misfit"
    shutil.copytree(tiny_base, other)
    config = json.loads((other / "config.json").read_text())
    config.update(change)
    (other / "config.json").write_text(json.dumps(config))
    expect_refusal(
        ["--base", str(other), "--adapter", str(tiny_adapters["full"])],
        out_dir,
        capfd,
        str(other),
        needle,
    )


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"r": "x"}, "r must be a positive integer, not 'x'"),
        ({"lora_alpha": "nan"}, "lora_alpha must be a finite number, not 'nan'"),
        ({"rank_pattern": {r"(\w|.)*\.": 2}}, "took over 0.5 s"),
    ],
    ids=["rank-x", "alpha-nan", "slow-rank-pattern"],
)
def test_adapter_config_values_that_cannot_be_used(
    tiny_base: Path, tiny_adapters, tmp_path, out_dir, capfd, monkeypatch, edit, needle
) -> None:
    monkeypatch.setattr("exporter.adapter.PATTERN_SECONDS", 0.5, raising=False)
    adapter = tmp_path / "odd"
    shutil.copytree(tiny_adapters["partial"], adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config.update(edit)
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    expect_refusal(
        ["--base", str(tiny_base), "--adapter", str(adapter)],
        out_dir,
        capfd,
        "adapter_config.json",
        needle,
    )


def test_pattern_keys_mean_what_they_mean_to_peft() -> None:
    from peft.utils.other import get_pattern_key

    from exporter.adapter import LoraPatterns, LoraSettings

    patterns = {
        "model.layers.1.mlp.down_proj": 16,
        r"layers\.(0|2)\..*proj": 12,
        "o_proj|k_proj": 6,
        "q_proj": 4,
        "mlp.*": 2,
    }
    matcher = LoraPatterns(LoraSettings(8, 8.0, False, patterns, {}), Path("adapter_config.json"))
    for layer in range(3):
        for projection in ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"):
            block = "self_attn" if projection[0] in "qkvo" else "mlp"
            module = f"model.layers.{layer}.{block}.{projection}"
            expected = patterns.get(get_pattern_key(list(patterns), module), 8)
            assert matcher.rank(module) == expected, module
