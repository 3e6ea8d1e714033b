"""A manifest's values are checked by type when it is read (issue 42): a size of "48" was a
TypeError traceback when the foundation was opened, an alpha of NaN a NaN on screen."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from lora_tui.format import FORMAT_VERSION, ArtifactError, Manifest

SHAPE = {
    "dim": 8,
    "n_layers": 1,
    "n_heads": 2,
    "n_kv_heads": 1,
    "head_dim": 4,
    "hidden_dim": 16,
    "vocab_size": 32,
    "norm_eps": 1e-5,
    "rope_theta": 10000.0,
}
PROGRAM = {
    "file": "nobel.pte",
    "kind": "adapter",
    "size_bytes": 1024,
    "rank": 16,
    "alpha": 32.0,
    "use_rslora": False,
    "target_modules": ["q_proj", "v_proj"],
    "source": "adapters/nobel",
    "source_sha256": "0" * 64,
    "adapter_size_bytes": 512,
    "sha256": "1" * 64,
}
MANIFEST = {
    "format": FORMAT_VERSION,
    "base_source": "base",
    "base_fingerprint": "2" * 64,
    "foundation_id": 12345,
    "foundation_file": "foundation.ptd",
    "foundation_sha256": "3" * 64,
    "foundation_size_bytes": 48,
    "shape": SHAPE,
    "max_context": 64,
    "tokenizer_file": "tokenizer.json",
    "chat_template": None,
    "bos_id": 1,
    "stop_ids": [2],
    "quantization": {"mode": "none", "group_size": None},
    "programs": {"nobel": PROGRAM},
}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_well_typed_manifest_reads(tmp_path: Path) -> None:
    manifest = Manifest.read(write_manifest(tmp_path, MANIFEST))
    assert manifest.foundation_size_bytes == 48
    assert manifest.programs["nobel"].alpha == 32.0


@pytest.mark.parametrize(
    ("changes", "program_changes", "needle"),
    [
        ({"foundation_size_bytes": "48"}, {}, "foundation_size_bytes is '48'"),
        ({"foundation_size_bytes": -1}, {}, "foundation_size_bytes is -1"),
        ({"max_context": 0}, {}, "max_context is 0"),
        ({"foundation_id": 1.5}, {}, "foundation_id is 1.5"),
        ({"stop_ids": ["<eos>"]}, {}, "stop_ids is ['<eos>']"),
        ({"bos_id": True}, {}, "bos_id is True"),
        ({"chat_template": 7}, {}, "chat_template is 7"),
        ({"shape": {**SHAPE, "n_heads": "2"}}, {}, "shape is {"),
        ({"shape": {"dim": 8}}, {}, "shape is {'dim': 8}"),
        ({"quantization": {"mode": "8da4w", "group_size": "32"}}, {}, "quantization is {"),
        ({}, {"alpha": "nan"}, "programs['nobel'].alpha is 'nan'"),
        ({}, {"alpha": float("nan")}, "programs['nobel'].alpha is nan"),
        ({}, {"rank": "x"}, "programs['nobel'].rank is 'x'"),
        ({}, {"size_bytes": "1024"}, "programs['nobel'].size_bytes is '1024'"),
        ({}, {"kind": "lora"}, "programs['nobel'].kind is 'lora'"),
        ({}, {"target_modules": ["lm_head"]}, "programs['nobel'].target_modules is ['lm_head']"),
        ({}, {"use_rslora": "no"}, "programs['nobel'].use_rslora is 'no'"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line(
    tmp_path: Path, changes: dict, program_changes: dict, needle: str
) -> None:
    program = {**PROGRAM, **program_changes}
    write_manifest(tmp_path, {**MANIFEST, **changes, "programs": {"nobel": program}})
    with pytest.raises(ArtifactError) as raised:
        Manifest.read(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and "manifest.json: damaged manifest" in message
    assert needle in message, message
    assert len(message) < 200, message  # a long value is cut, not printed whole


def test_opening_a_foundation_with_a_size_of_48_in_quotes_is_one_line(tmp_path: Path) -> None:
    from lora_tui.engine.artifacts import open_foundation

    # A .ptd header with no segments: 48 bytes that hold all they list, so the size from
    # the manifest is what is compared.
    header = b"\0" * 4 + b"FT" + b"\0" * 2 + b"FH01" + b"\0" * 20 + struct.pack("<QQ", 48, 0)
    (tmp_path / "foundation.ptd").write_bytes(header)
    write_manifest(tmp_path, {**MANIFEST, "foundation_size_bytes": "48"})
    with pytest.raises(ArtifactError, match="foundation_size_bytes is '48'"):
        open_foundation(tmp_path / "foundation.ptd")
