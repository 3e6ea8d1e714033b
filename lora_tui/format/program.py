"""The program files: their names, ExecuTorch's headers, and the constant methods an
ExecuTorch LLM program carries.

The programs are standard ExecuTorch LLM programs, the kind ``export_llm`` writes:
``forward(tokens int64 [1, T], input_pos int64 [1]) -> logits``, with the constant methods
ExecuTorch's runners read.
"""

from __future__ import annotations

import struct
from pathlib import Path

from lora_tui.format.errors import ArtifactError

# --- file names ----------------------------------------------------------------------------

FOUNDATION_FILE = "foundation.ptd"
BASE_PROGRAM = "base"  # the base model's own program, in a manifest and as base.pte
MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
GENERATION_CONFIG_FILE = "generation_config.json"
MODEL_CONFIG_FILE = "config.json"

# 3: standard token-id programs; every base weight, the embedding table included, in the .ptd.
# 2 fed embeddings from a private embeddings.npy, which ExecuTorch's runners cannot run.
FORMAT_VERSION = 3


# --- the program's constant methods ---------------------------------------------------------

# Read by ExecuTorch's LLM runners (extension/llm/runner/constants.h) and written by export_llm.
MAX_SEQ_LEN = "get_max_seq_len"  # most tokens one forward call takes
MAX_CONTEXT_LEN = "get_max_context_len"  # KV-cache length
N_LAYERS = "get_n_layers"
VOCAB_SIZE = "get_vocab_size"
BOS_ID = "get_bos_id"
EOS_IDS = "get_eos_ids"
USE_KV_CACHE = "use_kv_cache"
USE_SDPA_WITH_KV_CACHE = "use_sdpa_with_kv_cache"
ENABLE_DYNAMIC_SHAPE = "enable_dynamic_shape"
# lora-export's own: which foundation a program was built over (runners ignore it).
FOUNDATION_ID = "get_foundation_id"
CONSTANT_METHODS = (
    MAX_SEQ_LEN,
    MAX_CONTEXT_LEN,
    N_LAYERS,
    VOCAB_SIZE,
    BOS_ID,
    EOS_IDS,
    USE_KV_CACHE,
    USE_SDPA_WITH_KV_CACHE,
    ENABLE_DYNAMIC_SHAPE,
    FOUNDATION_ID,
)
FORWARD = "forward"


def llm_constant_methods(
    *,
    max_seq_len: int,
    max_context_len: int,
    n_layers: int,
    vocab_size: int,
    bos_id: int | None,
    eos_ids: list[int],
    foundation_id: int,
) -> dict[str, object]:
    """The constant methods of a program, as export_llm writes them, plus the foundation id."""
    methods: dict[str, object] = {
        MAX_SEQ_LEN: max_seq_len,
        MAX_CONTEXT_LEN: max_context_len,
        N_LAYERS: n_layers,
        VOCAB_SIZE: vocab_size,
        USE_KV_CACHE: True,
        USE_SDPA_WITH_KV_CACHE: True,
        ENABLE_DYNAMIC_SHAPE: True,
        EOS_IDS: list(eos_ids),
        FOUNDATION_ID: foundation_id,
    }
    if bos_id is not None:
        methods[BOS_ID] = bos_id
    return methods


# --- header checks --------------------------------------------------------------------------

_PTE_MAGIC, _PTE_HEADER = b"ET", b"eh00"  # flatbuffer id "ET12" at 4..8, then extended header
_PTD_MAGIC, _PTD_HEADER = b"FT", b"FH01"


def program_extent(head: bytes) -> int | None:
    """How long a .pte must be, from its first 40 bytes; None if it is not a program."""
    if len(head) < 40 or head[4:6] != _PTE_MAGIC or head[8:12] != _PTE_HEADER:
        return None
    program_size, segment_base, segment_size = struct.unpack_from("<QQQ", head, 16)
    return max(program_size, segment_base + segment_size)


def check_program_file(path: Path) -> None:
    """A .pte must exist, carry ExecuTorch's header, and be as long as the header says."""
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    with path.open("rb") as handle:
        needed = program_extent(handle.read(40))
    if needed is None:
        raise ArtifactError(f"{path}: not an ExecuTorch program (.pte)")
    actual = path.stat().st_size
    if actual < needed:
        raise ArtifactError(f"{path}: truncated ({actual} of {needed} bytes)")


def check_data_file(path: Path, expected_size: int | None = None) -> None:
    """A .ptd must exist, carry ExecuTorch's data header, and hold every segment it lists."""
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(48)
    if len(head) < 48 or head[4:6] != _PTD_MAGIC or head[8:12] != _PTD_HEADER:
        raise ArtifactError(f"{path}: not an ExecuTorch weights file (.ptd)")
    segment_base, segment_size = struct.unpack_from("<QQ", head, 32)
    needed = max(segment_base + segment_size, expected_size or 0)
    actual = path.stat().st_size
    if actual < needed:
        raise ArtifactError(f"{path}: truncated ({actual} of {needed} bytes)")
    if expected_size is not None and actual != expected_size:
        raise ArtifactError(f"{path}: {actual} bytes, but its manifest says {expected_size}")
