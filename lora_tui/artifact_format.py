"""The artifact contract between ``lora-export`` (which writes it) and lora-tui (which reads it).

Everything both sides must agree on lives here and nowhere else: file names, the constant
methods an ExecuTorch LLM program carries, the header checks for ``.pte`` and ``.ptd``
files, how stop and BOS ids are found in a tokenizer's files, and the manifest.

The programs themselves are standard ExecuTorch LLM programs, the kind ``export_llm``
writes: ``forward(tokens int64 [1, T], input_pos int64 [1]) -> logits``, with the constant
methods ExecuTorch's runners read. The manifest is optional extra information (which base,
which adapter, rank and targets); a program without one still opens.

Only the standard library here (and ``tokenizers`` when ids are looked up), so importing the
contract never pulls in torch or ExecuTorch's export machinery.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# --- file names ----------------------------------------------------------------------------

FOUNDATION_FILE = "foundation.ptd"
MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
GENERATION_CONFIG_FILE = "generation_config.json"
MODEL_CONFIG_FILE = "config.json"

# 3: standard token-id programs; every base weight, the embedding table included, in the .ptd.
# 2 fed embeddings from a private embeddings.npy, which ExecuTorch's runners cannot run.
FORMAT_VERSION = 3


class ArtifactError(Exception):
    """Bad input: one line that names the file and the problem. The root of every error the
    exporter and the engine report to a person."""


def one_line(err: BaseException) -> str:
    """An error as one line: an ArtifactError's own words, else its type and first line."""
    if isinstance(err, ArtifactError):
        return str(err)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


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


# --- tokenizer files ------------------------------------------------------------------------

# Chat templates end a turn with one of these; each one the template uses is a stop token.
END_OF_TURN_TOKENS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
)
# End-of-document tokens (Llama 3's, Qwen's and SmolLM2's). No template writes them, but a
# model may end a reply with one; generation_config.json lists them where the model needs it.
END_OF_TEXT_TOKENS = ("<|end_of_text|>", "<|endoftext|>")


def special_ids(
    tokenizer: Any,
    chat_template: str | None,
    configs: list[dict[str, Any]],
    special_tokens: dict[str, Any],
) -> tuple[int | None, list[int]]:
    """(bos id, stop ids) from model/generation configs, the tokenizer's special tokens and
    the end-of-turn markers the chat template uses. ``tokenizer`` is a ``tokenizers.Tokenizer``.
    """

    def token_id(token: Any) -> int | None:
        if isinstance(token, dict):
            token = token.get("content")
        return tokenizer.token_to_id(token) if isinstance(token, str) else None

    stop_ids: list[int] = []

    def add_stop(value: Any) -> None:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int) and item not in stop_ids:
                stop_ids.append(item)

    bos_id = None
    for config in configs:
        add_stop(config.get("eos_token_id"))
        if bos_id is None and isinstance(config.get("bos_token_id"), int):
            bos_id = config["bos_token_id"]
    add_stop(token_id(special_tokens.get("eos_token")))
    if bos_id is None:
        bos_id = token_id(special_tokens.get("bos_token"))
    for marker in END_OF_TURN_TOKENS:
        if chat_template and marker in chat_template:
            add_stop(tokenizer.token_to_id(marker))
    return bos_id, stop_ids


def chat_template_of(tokenizer_config: dict[str, Any], folder: Path) -> str | None:
    """The chat template from ``tokenizer_config.json`` (a string, or named templates) or
    from ``chat_template.jinja`` beside it, as transformers saves it."""
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if isinstance(template, str) and template:
        return template
    template_file = folder / CHAT_TEMPLATE_FILE
    return template_file.read_text(encoding="utf-8") if template_file.is_file() else None


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: unreadable ({err})") from None
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


# --- the manifest ---------------------------------------------------------------------------


def projection_features(shape: dict[str, Any], projection: str) -> tuple[int, int]:
    """(in_features, out_features) of a projection of the manifest's ``shape``."""
    dim, hidden = shape["dim"], shape["hidden_dim"]
    q_out = shape["n_heads"] * shape["head_dim"]
    kv_out = shape["n_kv_heads"] * shape["head_dim"]
    return {
        "q_proj": (dim, q_out),
        "k_proj": (dim, kv_out),
        "v_proj": (dim, kv_out),
        "o_proj": (q_out, dim),
        "gate_proj": (dim, hidden),
        "up_proj": (dim, hidden),
        "down_proj": (hidden, dim),
    }[projection]


def lora_weight_bytes(shape: dict[str, Any], rank: int, targets: list[str]) -> int:
    """fp32 bytes of LoRA A [r, in] and B [out, r] on ``targets`` in every layer."""
    per_layer = sum(rank * sum(projection_features(shape, t)) for t in targets)
    return per_layer * shape["n_layers"] * 4


def kv_cache_bytes(shape: dict[str, Any], max_context: int) -> int:
    """fp32 keys and values for ``max_context`` positions in every layer."""
    return 2 * shape["n_layers"] * max_context * shape["n_kv_heads"] * shape["head_dim"] * 4


@dataclass(frozen=True)
class Quantization:
    """How the foundation's weights are stored; every program over it shares this.

    ``none`` keeps fp32. ``8da4w`` is what ExecuTorch's LoRA demo ships: linear weights int4
    in groups of ``group_size`` with int8 dynamic activations, the token embeddings int8 per
    row, and the LoRA A/B weights fp32 (torchao's filter in ExecuTorch leaves them)."""

    mode: str = "none"
    group_size: int | None = None  # 8da4w: input columns per int4 scale

    @property
    def label(self) -> str:
        return "fp32" if self.mode == "none" else f"{self.mode} g{self.group_size}"

    @classmethod
    def from_json(cls, raw: object) -> Quantization:
        if not isinstance(raw, dict) or raw.get("mode") not in QUANTIZE_MODES:
            raise ArtifactError(f"unknown quantization {raw!r}")
        return cls(raw["mode"], raw.get("group_size"))


QUANTIZE_MODES = ("none", "8da4w")
FP32 = Quantization()
DEFAULT_GROUP_SIZE = 32  # as ExecuTorch's LoRA demo; XNNPACK needs at least 32


@dataclass
class ProgramEntry:
    file: str
    kind: str  # "adapter" or "base"
    size_bytes: int
    rank: int | None = None
    alpha: float | None = None
    use_rslora: bool = False
    target_modules: list[str] = field(default_factory=list)
    source: str | None = None
    source_sha256: str | None = None
    adapter_size_bytes: int | None = None
    sha256: str | None = None  # of the .pte itself, so a damaged copy is refused


@dataclass
class Manifest:
    base_source: str
    base_fingerprint: str  # hash of the base's shape and weights
    foundation_id: int  # every program built over this foundation returns it
    foundation_file: str
    foundation_sha256: str  # hash of the .ptd file itself
    foundation_size_bytes: int
    shape: dict[str, Any]
    max_context: int
    tokenizer_file: str
    chat_template: str | None
    bos_id: int | None
    stop_ids: list[int]
    programs: dict[str, ProgramEntry] = field(default_factory=dict)
    format: int = FORMAT_VERSION
    # Absent in folders from before quantization, which are all fp32.
    quantization: dict[str, Any] = field(default_factory=lambda: asdict(FP32))

    @property
    def quantized(self) -> Quantization:
        return Quantization.from_json(self.quantization)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (not a lora-export output folder)")
        raw = read_json_file(path)
        if not isinstance(raw, dict):
            raise ArtifactError(f"{path}: damaged manifest (not a JSON object)")
        version = raw.get("format")
        if version != FORMAT_VERSION:
            raise ArtifactError(
                f"{path}: written by another lora-export (format {version}, this one reads "
                f"{FORMAT_VERSION}); export the folder again with this version"
            )
        try:
            programs = {name: ProgramEntry(**entry) for name, entry in raw.pop("programs").items()}
            return cls(**raw, programs=programs)
        except (TypeError, KeyError, AttributeError) as err:
            raise ArtifactError(f"{path}: damaged manifest ({err})") from None

    def program_named(self, file_name: str) -> tuple[str, ProgramEntry] | None:
        for name, entry in self.programs.items():
            if entry.file == file_name:
                return name, entry
        return None


def foundation_id(
    base_fingerprint: str, max_context: int, quantization: Quantization = FP32
) -> int:
    """A 60-bit id of everything that decides the .ptd's contents and the programs' inputs,
    small enough for int64. A program of another quantization has another id, so it is
    refused over this foundation as one from another base is."""
    key = f"{base_fingerprint}:{max_context}:format{FORMAT_VERSION}"
    if quantization != FP32:  # fp32 keeps the id it had before quantization existed
        key += f":{quantization.mode}:g{quantization.group_size}"
    return int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
