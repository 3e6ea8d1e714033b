"""The ExecuTorch runtime, imported light: the native module and the kernels LLM programs
need, without the exporter's Python stack.

``executorch.extension.pybindings.portable_lib`` imports ``executorch.exir`` for one warning
class, and ``executorch.extension.llm.custom_ops.custom_ops`` imports torch's inductor to
register lowerings for export: together about 4 s of the 7 s an engine process took to
import the runtime here, and nothing a program needs to run. The native module (``_C``)
and two kernel libraries (custom SDPA and the KV-cache update, as export_llm writes them;
quantized embeddings) are all it needs. Loading a library registers its kernels with the
runtime, as those modules do.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

# What export_llm's programs call besides the kernels built into the native module, by
# where each library sits in the executorch package.
_KERNELS = (
    "extension/llm/custom_ops/libcustom_ops_aot_lib.so",
    "kernels/quantized/libquantized_ops_aot_lib.so",
)
_loaded = False


def native() -> ModuleType:
    """ExecuTorch's native module (``_load_for_executorch``, ``Verification``, the thread
    pool), with the LLM kernels registered."""
    global _loaded
    import torch  # the kernel libraries link libtorch
    from executorch.extension.pybindings import _C

    if not _loaded:
        for library in _KERNELS:
            torch.ops.load_library(package_dir() / library)
        _loaded = True
    return _C


def package_dir() -> Path:
    """The installed executorch package (its native libraries and headers are under it)."""
    from executorch.extension.pybindings import _C

    return Path(_C.__file__).parents[2]  # executorch/extension/pybindings/_C...so
