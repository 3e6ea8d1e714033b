"""Turn on XNNPACK's weight cache so every program shares one packed copy of the foundation.

The pip wheel compiles the cache in but leaves it off, with no Python switch. A 40-line C++
shim (built once with the machine's g++ against the headers the wheel ships) sets the
``weight_cache_enabled`` option of the ``XnnpackBackend`` in the process's backend registry
and reads it back. If any step fails the engine still runs, with sharing reported off.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.resources
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lora_tui.engine.paths import cache_dir
from lora_tui.engine.types import Sharing

# Package data, read through importlib so an installed wheel finds it as a checkout does.
_SOURCE = importlib.resources.files("lora_tui.engine") / "weight_cache_shim.cpp"
# The library that exports the backend registry (executorch::runtime::get_backend_class):
# executorch 1.5 ships it as lib/libexecutorch.so; 1.4 had it inside the QNN backend's library.
_REGISTRY_LIBRARIES = ("lib/libexecutorch.so", "backends/qualcomm/libqnn_executorch_backend.so")
_REGISTRY_SYMBOL = "_ZN10executorch7runtime17get_backend_classEPKc"


def configure_sharing(enabled: bool) -> Sharing:
    """Set the weight cache on or off for programs loaded from now on, and confirm it."""
    # Importing the pybindings registers the backends in the registry the shim talks to.
    from executorch.extension.pybindings import portable_lib

    shim = _load_shim(Path(portable_lib.__file__).parents[2])
    if not enabled:
        if not isinstance(shim, str):
            shim.lora_tui_set_weight_cache(0)
        return Sharing(False, "off on request")
    if isinstance(shim, str):
        return Sharing(False, shim)
    error = shim.lora_tui_set_weight_cache(1)
    if error != 0:
        return Sharing(False, f"XnnpackBackend refused weight_cache_enabled (error {error})")
    value = shim.lora_tui_get_weight_cache()
    if value != 1:
        return Sharing(False, f"weight_cache_enabled reads back as {value}, not on")
    return Sharing(True, "XNNPACK weight cache on (confirmed by reading the option back)")


def _load_shim(executorch_dir: Path) -> ctypes.CDLL | str:
    """The shim library, building it on first use. A string says why it is unavailable."""
    registry = _registry_library(executorch_dir)
    if registry is None:
        return "this executorch wheel has no library with the backend registry; sharing is off"
    library = _build(executorch_dir, registry)
    if isinstance(library, str):
        return library
    try:
        shim = ctypes.CDLL(str(library))
        shim.lora_tui_set_weight_cache.argtypes = [ctypes.c_int]
        shim.lora_tui_set_weight_cache.restype = ctypes.c_int
        shim.lora_tui_get_weight_cache.restype = ctypes.c_int
        return shim
    except (OSError, AttributeError) as err:
        return f"the weight-cache shim did not load ({err}); sharing is off"


def _registry_library(executorch_dir: Path) -> Path | None:
    """The first of the wheel's libraries that exports the backend registry, or None."""
    for name in _REGISTRY_LIBRARIES:
        candidate = executorch_dir / name
        try:
            # Already loaded by the pybindings, so this only finds the loaded copy.
            if candidate.is_file() and hasattr(ctypes.CDLL(str(candidate)), _REGISTRY_SYMBOL):
                return candidate
        except OSError:
            continue
    return None


def _build(executorch_dir: Path, registry: Path) -> Path | str:
    import torch

    try:
        source = _SOURCE.read_bytes()
    except OSError as err:
        return f"the weight-cache shim's source is missing from lora_tui ({err}); sharing is off"
    # The registry library and executorch's version are in the key: a shim built against
    # another executorch (an upgrade in place, same folder) is not reused.
    versions = f"{registry}|{importlib.metadata.version('executorch')}|{torch.__version__}"
    key = hashlib.sha256(source + versions.encode())
    target = cache_dir() / "shim" / f"weight_cache_{key.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        return "no C++ compiler (g++) found to build the weight-cache shim; sharing is off"
    includes = [executorch_dir / "include", Path(torch.__file__).parent / "include"]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # g++ reads files, and lora_tui may be installed anywhere: compile a private copy
        # (private, because the engine and its pre-flight child may build at the same time).
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as scratch:
            source_file = Path(scratch) / "weight_cache_shim.cpp"
            source_file.write_bytes(source)
            return _compile(compiler, source_file, includes, registry, target)
    except OSError as err:  # an unwritable cache folder, a full disk
        return f"building the weight-cache shim failed ({err}); sharing is off"


def _compile(
    compiler: str, source_file: Path, includes: list[Path], registry: Path, target: Path
) -> Path | str:
    partial = source_file.with_suffix(".so")
    command = [
        compiler,
        "-std=c++17",
        "-shared",
        "-fPIC",
        "-O1",
        *(f"-I{folder}" for folder in includes),
        str(source_file),
        "-o",
        str(partial),
        f"-L{registry.parent}",
        f"-l:{registry.name}",
        f"-Wl,-rpath,{registry.parent}",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"building the weight-cache shim failed ({err}); sharing is off"
    if done.returncode != 0:
        lines = done.stderr.splitlines()
        first_error = next((ln for ln in lines if "error" in ln), lines[0] if lines else "")
        reason = first_error.strip()[:200] or f"{compiler} exited with {done.returncode}"
        return f"building the weight-cache shim failed ({reason}); sharing is off"
    os.replace(partial, target)
    return target
