"""Turn a base model (Llama 2/3.x, Qwen2/2.5, Qwen3) and PEFT LoRA adapters into
ExecuTorch artifacts.

One ``foundation.ptd`` holds every base weight; each adapter becomes a small ``NAME.pte``
that holds its program and only its own LoRA weights. This package knows nothing of the UI.
"""

from exporter.errors import ExportError

__all__ = ["ExportError"]
