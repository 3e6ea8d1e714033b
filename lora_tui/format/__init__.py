"""The artifact contract between ``lora-export`` (which writes it) and lora-tui (which reads it).

Everything both sides must agree on lives here and nowhere else:

- ``program``: file names, ExecuTorch's ``.pte``/``.ptd`` headers, the constant methods;
- ``tokenizer``: how BOS and stop ids and the chat template are found in a model's files;
- ``manifest``: the optional manifest, quantization and the foundation's id;
- ``scaling``: an adapter's program at another LoRA strength;
- ``sizes``: LoRA and KV-cache bytes from a model's shape;
- ``errors``: ``ArtifactError``, the root of every error shown to a person.

Only the standard library here, so importing the contract never pulls in torch, ExecuTorch
or Textual (``tests/unit/test_layers.py`` checks it).
"""

from lora_tui.format.errors import ArtifactError, one_line, quoted
from lora_tui.format.manifest import (
    CHECKPOINT_SEPARATOR,
    DEFAULT_GROUP_SIZE,
    FP32,
    QUANTIZE_MODES,
    Manifest,
    ProgramEntry,
    Quantization,
    checkpoint_program_name,
    display_name,
    foundation_id,
    read_json_file,
    sha256_file,
)
from lora_tui.format.program import (
    BASE_PROGRAM,
    BOS_ID,
    CHAT_TEMPLATE_FILE,
    CONSTANT_METHODS,
    ENABLE_DYNAMIC_SHAPE,
    EOS_IDS,
    FORMAT_VERSION,
    FORWARD,
    FOUNDATION_FILE,
    FOUNDATION_ID,
    GENERATION_CONFIG_FILE,
    MANIFEST_FILE,
    MAX_CONTEXT_LEN,
    MAX_SEQ_LEN,
    MODEL_CONFIG_FILE,
    N_LAYERS,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    USE_KV_CACHE,
    USE_SDPA_WITH_KV_CACHE,
    VOCAB_SIZE,
    check_data_file,
    check_program_file,
    llm_constant_methods,
    program_extent,
)
from lora_tui.format.scaling import (
    MAX_SCALE,
    MIN_SCALE,
    check_scale,
    scale_label,
    scale_program,
    scaled_name,
)
from lora_tui.format.sizes import kv_cache_bytes, lora_weight_bytes, projection_features
from lora_tui.format.tokenizer import (
    END_OF_TEXT_TOKENS,
    END_OF_TURN_TOKENS,
    chat_template_of,
    special_ids,
)

__all__ = [
    "BASE_PROGRAM",
    "BOS_ID",
    "CHAT_TEMPLATE_FILE",
    "CHECKPOINT_SEPARATOR",
    "CONSTANT_METHODS",
    "DEFAULT_GROUP_SIZE",
    "ENABLE_DYNAMIC_SHAPE",
    "END_OF_TEXT_TOKENS",
    "END_OF_TURN_TOKENS",
    "EOS_IDS",
    "FORMAT_VERSION",
    "FORWARD",
    "FOUNDATION_FILE",
    "FOUNDATION_ID",
    "FP32",
    "GENERATION_CONFIG_FILE",
    "MANIFEST_FILE",
    "MAX_CONTEXT_LEN",
    "MAX_SCALE",
    "MAX_SEQ_LEN",
    "MIN_SCALE",
    "MODEL_CONFIG_FILE",
    "N_LAYERS",
    "QUANTIZE_MODES",
    "TOKENIZER_CONFIG_FILE",
    "TOKENIZER_FILE",
    "USE_KV_CACHE",
    "USE_SDPA_WITH_KV_CACHE",
    "VOCAB_SIZE",
    "ArtifactError",
    "Manifest",
    "ProgramEntry",
    "Quantization",
    "chat_template_of",
    "check_data_file",
    "check_scale",
    "check_program_file",
    "checkpoint_program_name",
    "display_name",
    "foundation_id",
    "kv_cache_bytes",
    "llm_constant_methods",
    "lora_weight_bytes",
    "one_line",
    "program_extent",
    "projection_features",
    "quoted",
    "read_json_file",
    "scale_label",
    "scale_program",
    "scaled_name",
    "sha256_file",
    "special_ids",
]
