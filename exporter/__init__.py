"""Turn a Llama-architecture base model and PEFT LoRA adapters into ExecuTorch artifacts.

One ``foundation.ptd`` holds every base weight; each adapter becomes a small ``NAME.pte``
that holds its program and only its own LoRA weights. This package knows nothing of the UI.
"""

from exporter.errors import ExportError

__all__ = ["ExportError"]
