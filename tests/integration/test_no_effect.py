"""An adapter that does nothing is flagged (issue 44): lora-export warns of an untrained
adapter (every lora_B zero), and the engine, loading its program beside the base program,
finds on its load probe that its logits equal the base's and says so once (NoEffect). The
probe leaves no trace in the first reply."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exporter import cli
from exporter.pipeline import ExportRequest, run_export
from lora_tui.engine import GenerationSettings, Loaded, Message, ModelHost, ReplyDone
from lora_tui.engine.loading import load_module, warm_up
from lora_tui.engine.protocol import NoEffect
from lora_tui.engine.session import AdapterSession
from lora_tui.engine.worker import EngineProcess, EventCollector
from tests.support.artifacts import ALL_TARGETS, MAX_CONTEXT, TinyArtifacts
from tests.support.tiny import build_adapter

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=16)
LOADS_S = 600.0  # four checks and loads on two cores shared with other work: a real margin
UNTRAINED = "all its lora_B weights are zero (PEFT's initial value: saved before training?)"


@pytest.fixture(scope="module")
def untrained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An r=8 adapter on every projection, as PEFT saves it before training: the shape of
    the fixtures' 'full', so it fills their template in seconds."""
    root = tmp_path_factory.mktemp("untrained")
    return build_adapter(
        tiny_base, root / "zero", r=8, alpha=16, targets=ALL_TARGETS, trained=False
    )


@pytest.fixture(scope="module")
def with_zero(
    tiny_artifacts: TinyArtifacts, untrained: Path, tmp_path_factory: pytest.TempPathFactory
) -> TinyArtifacts:
    """The fixtures' folder with the untrained adapter's program 'zero' added."""
    out = tmp_path_factory.mktemp("with_zero") / "out"
    shutil.copytree(tiny_artifacts.out, out)
    request = ExportRequest(tiny_artifacts.base_dir, [("zero", untrained)], out, False, MAX_CONTEXT)
    assert run_export(request).warnings == {"zero": UNTRAINED}
    return TinyArtifacts(tiny_artifacts.base_dir, tiny_artifacts.adapters, out)


def test_lora_export_warns_of_an_untrained_adapter_and_exports_it(
    tiny_artifacts: TinyArtifacts, untrained: Path, tmp_path: Path, capfd
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts.out, out)
    full = tiny_artifacts.adapters["full"]
    capfd.readouterr()
    base = str(tiny_artifacts.base_dir)
    code = cli.main(
        ["--base", base, "--out", str(out), "--max-context", str(MAX_CONTEXT)]
        + ["--adapter", f"zero={untrained}", "--adapter", f"full={full}"]
    )
    captured = capfd.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert code == 0, lines
    assert (out / "zero.pte").is_file()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [f"warning: zero: {UNTRAINED}"]  # one line, the trained one has none


def test_an_untrained_adapter_loaded_beside_the_base_is_flagged_with_no_change(
    with_zero: TinyArtifacts, tmp_path: Path
) -> None:
    events = EventCollector()
    engine = EngineProcess(with_zero.foundation, events, log_path=tmp_path / "engine.log", panes=3)
    try:
        for name in ("zero", "full", "base", "partial"):  # the base after an adapter, too
            engine.load(with_zero.program(name))
        got = events.wait_for(lambda got: sum(isinstance(e, Loaded) for e in got) == 4, LOADS_S)
        # A NoEffect comes with the base's Loaded or the adapter's, whichever is later.
        hello = [Message("user", "Hello there")]
        engine.send({"zero": hello}, GREEDY)
        got = events.wait_for(lambda got: any(isinstance(e, ReplyDone) for e in got), LOADS_S)
    finally:
        engine.close()
    assert [e for e in got if isinstance(e, NoEffect)] == [NoEffect("zero", "base", 0.0)]


def test_without_a_base_program_nothing_is_probed_against(
    with_zero: TinyArtifacts, tmp_path: Path
) -> None:
    events = EventCollector()
    engine = EngineProcess(with_zero.foundation, events, log_path=tmp_path / "engine.log")
    try:
        engine.load(with_zero.program("zero"))
        engine.send({"zero": [Message("user", "Hello")]}, GREEDY)
        got = events.wait_for(lambda got: any(isinstance(e, ReplyDone) for e in got), LOADS_S)
    finally:
        engine.close()
    assert not any(isinstance(e, NoEffect) for e in got)


def test_the_probe_leaves_the_first_reply_as_it_was(tiny_artifacts: TinyArtifacts) -> None:
    """The first reply after the load probe (several tokens from position 0) equals one after
    the old warm-up of a single token."""
    host = ModelHost(tiny_artifacts.foundation)
    info = host.load(tiny_artifacts.program("full"))
    probed = host.probed(info.name)
    assert len(probed) == 1 and len(probed[0].tokens) > 1 and not probed[0].base
    session = host.sessions[info.name]
    module = load_module(tiny_artifacts.program("full"), tiny_artifacts.foundation)
    warm_up(module, tiny_artifacts.program("full"), tiny_artifacts.foundation)  # one token
    unprobed = AdapterSession("unprobed", module, session.chat, session.facts)
    host.sessions["unprobed"] = unprobed
    for text in ("Hi", "Tell me about the capital of France, please."):
        after_probe = host.answer(info.name, [Message("user", text)], GREEDY)
        without = host.answer("unprobed", [Message("user", text)], GREEDY)
        assert after_probe.text == without.text and after_probe.text
        host.clear()


def test_an_untrained_adapters_reply_is_the_same_as_the_bases(with_zero: TinyArtifacts) -> None:
    """Issue 44: its reply, scored under the base, is token for token the base's greedy one."""
    host = ModelHost(with_zero.foundation)
    for name in ("base", "zero"):
        host.load(with_zero.program(name))
    hello = [Message("user", "Tell me about the capital of France, please.")]
    zero = host.answer("zero", hello, GREEDY)
    departure = host.departure("base", "zero")
    assert departure is not None and zero.text
    assert departure.same_as_base and departure.summary == "same as base"
    assert host.answer("base", hello, GREEDY).text == zero.text
