"""Turn on XNNPACK's weight cache so every program shares one packed copy of the foundation.

The pip wheel compiles the cache in but leaves it off, with no Python switch. A 40-line C++
shim (built once with the machine's g++ against the headers the wheel ships) sets the
``weight_cache_enabled`` option of the ``XnnpackBackend`` in the process's backend registry
and reads it back. If any step fails the engine still runs, with sharing reported off.

The built library is code this process loads, so it is kept where only its user can write:
its folder is made 0700 and refused if another user owns it or others may write to it, and
its name covers everything it was built from (the source, executorch and torch, the machine
and the compiler). A library that does not load (cut short, damaged) is built again once.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.resources
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lora_tui.common.lifetime import dying_with_us, start_child
from lora_tui.engine.paths import cache_dir
from lora_tui.engine.runtime import native, package_dir
from lora_tui.engine.types import Sharing

# Package data, read through importlib so an installed wheel finds it as a checkout does.
_SOURCE = importlib.resources.files("lora_tui.engine") / "weight_cache_shim.cpp"
# The library that exports the backend registry (executorch::runtime::get_backend_class):
# executorch 1.5 ships it as lib/libexecutorch.so; 1.4 had it inside the QNN backend's library.
_REGISTRY_LIBRARIES = ("lib/libexecutorch.so", "backends/qualcomm/libqnn_executorch_backend.so")
_REGISTRY_SYMBOL = "_ZN10executorch7runtime17get_backend_classEPKc"
# The XNNPACK backend's own library (1.5): the packed-file hook calls into it.
_XNNPACK_LIBRARY = "libexecutorch_backend_xnnpack.so"
_FAILED = "building the weight-cache shim failed"
_OFF = "sharing is off"


def configure_sharing(enabled: bool) -> Sharing:
    """Set the weight cache on or off for programs loaded from now on, and confirm it."""
    # Importing the runtime registers the backends in the registry the shim talks to.
    native()
    shim = _load_shim(package_dir())
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


def use_packed_file(path: Path) -> str | None:
    """Make every program this process loads from now on map its packed weights from
    ``path`` (``packed.py`` decides which file, and that it is sound). None when it took;
    else the one line that says why not (the weight cache stays on, in memory). Call after
    ``configure_sharing(True)`` and before the first program loads."""
    native()
    shim = _load_shim(package_dir())
    if isinstance(shim, str):
        return shim
    error = shim.lora_tui_use_packed_file(os.fsencode(path))
    if error != 0:
        return f"this ExecuTorch's XNNPACK backend did not take a packed-weights file ({error})"
    return None


@dataclass(frozen=True)
class ShimRecipe:
    """What the shim is built from, and where it is kept."""

    source: bytes
    includes: tuple[Path, ...]
    registry: Path  # the library it links
    versions: str  # executorch's and torch's: a shim built against others is not reused
    folder: Path


def _load_shim(executorch_dir: Path) -> ctypes.CDLL | str:
    """The shim library, building it on first use. A string says why it is unavailable."""
    registry = _registry_library(executorch_dir)
    if registry is None:
        return "this executorch wheel has no library with the backend registry; sharing is off"
    recipe = _recipe(executorch_dir, registry)
    return recipe if isinstance(recipe, str) else load_or_build(recipe)


def load_or_build(recipe: ShimRecipe) -> ctypes.CDLL | str:
    """The shim, built if it is not yet; one that does not load is built again, once."""
    library = _build(recipe)
    if isinstance(library, str):
        return library
    shim = _open(library)
    if isinstance(shim, str):  # cut short (a full disk, a killed build) or damaged
        library.unlink(missing_ok=True)
        library = _build(recipe)
        if isinstance(library, str):
            return library
        shim = _open(library)
        if isinstance(shim, str):
            return f"the weight-cache shim did not load, even built again ({shim}); {_OFF}"
    return shim


def _open(library: Path) -> ctypes.CDLL | str:
    try:
        shim = ctypes.CDLL(str(library))
        shim.lora_tui_set_weight_cache.argtypes = [ctypes.c_int]
        shim.lora_tui_set_weight_cache.restype = ctypes.c_int
        shim.lora_tui_get_weight_cache.restype = ctypes.c_int
        shim.lora_tui_use_packed_file.argtypes = [ctypes.c_char_p]
        shim.lora_tui_use_packed_file.restype = ctypes.c_int
        return shim
    except (OSError, AttributeError) as err:
        return " ".join(str(err).split())[:200]


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


def _recipe(executorch_dir: Path, registry: Path) -> ShimRecipe | str:
    import torch

    try:
        source = _SOURCE.read_bytes()
    except OSError as err:
        return f"the weight-cache shim's source is missing from lora_tui ({err}); {_OFF}"
    includes = (executorch_dir / "include", Path(torch.__file__).parent / "include")
    versions = f"{registry}|{importlib.metadata.version('executorch')}|{torch.__version__}"
    return ShimRecipe(source, includes, registry, versions, cache_dir() / "shim")


def _build(recipe: ShimRecipe) -> Path | str:
    """The library for ``recipe``, built now unless a sound one is already in its folder."""
    refused = _private_folder(recipe.folder)
    if refused is not None:
        return refused
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        return f"no C++ compiler (g++) found to build the weight-cache shim; {_OFF}"
    identity = _compiler_identity(compiler)
    if identity.startswith(_FAILED):
        return identity
    built_from = f"{recipe.versions}|{platform.machine()}|{compiler}|{identity}"
    key = hashlib.sha256(recipe.source + built_from.encode()).hexdigest()[:16]
    target = recipe.folder / f"weight_cache_{key}.so"
    if _is_ours(target):
        return target
    try:
        # g++ reads files, and lora_tui may be installed anywhere: compile a private copy
        # (private, because the engine and its pre-flight child may build at the same time).
        with tempfile.TemporaryDirectory(dir=recipe.folder, prefix=".build-") as scratch:
            source_file = Path(scratch) / "weight_cache_shim.cpp"
            source_file.write_bytes(recipe.source)
            return _compile(compiler, source_file, recipe, target)
    except OSError as err:  # a full disk
        return f"{_FAILED} ({err}); {_OFF}"


def _private_folder(folder: Path) -> str | None:
    """Make ``folder`` (0700) if it is missing; None if code may be loaded from it, else
    the one line that says why not."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        found = folder.lstat()
    except OSError as err:  # a file where a folder should be, no permission
        return f"{_FAILED} (cannot make {folder}: {err.strerror}); {_OFF}"
    if not stat.S_ISDIR(found.st_mode):
        return f"the weight-cache shim's folder {folder} is not a folder; {_OFF}"
    if found.st_uid != os.getuid():
        return f"the weight-cache shim's folder {folder} belongs to another user; {_OFF}"
    if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(found.st_mode)
        return f"the weight-cache shim's folder {folder} is writable by others ({mode:o}); {_OFF}"
    return None


def _is_ours(library: Path) -> bool:
    """A file of ours that nobody else may change (a link or anything else is built anew)."""
    try:
        found = library.lstat()
    except OSError:
        return False
    return (
        stat.S_ISREG(found.st_mode)
        and found.st_uid == os.getuid()
        and not found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _compiler_identity(compiler: str) -> str:
    """The first line of ``compiler --version`` ("g++ (Debian 12.2.0-14) 12.2.0"): a library
    built by another compiler is not reused. A failure is the one line that says why."""
    try:
        done = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=60, cwd=os.sep
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{_FAILED} ({err}); {_OFF}"
    first = done.stdout.strip().splitlines()[:1]
    if done.returncode != 0 or not first:
        return f"{_FAILED} ({compiler} --version exited with {done.returncode}); {_OFF}"
    return first[0]


def _compile(compiler: str, source_file: Path, recipe: ShimRecipe, target: Path) -> Path | str:
    partial = source_file.with_suffix(".so")
    registry = recipe.registry
    command = [
        compiler,
        "-std=c++17",
        "-shared",
        "-fPIC",
        "-O1",
        *(f"-I{folder}" for folder in recipe.includes),
        str(source_file),
        "-o",
        str(partial),
        f"-L{registry.parent}",
        f"-l:{registry.name}",
        *([f"-l:{_XNNPACK_LIBRARY}"] if (registry.parent / _XNNPACK_LIBRARY).is_file() else []),
        f"-Wl,-rpath,{registry.parent}",
    ]
    try:
        # Killed with us: a build left running after the app is gone writes into our cache.
        build = start_child(
            lambda: subprocess.Popen(
                dying_with_us(command),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=source_file.parent,
            )
        )
        try:
            _, stderr = build.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            build.kill()
            build.communicate()
            raise
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{_FAILED} ({err}); {_OFF}"
    if build.returncode != 0 or not partial.is_file():
        lines = stderr.splitlines()
        first_error = next((ln for ln in lines if "error" in ln), lines[0] if lines else "")
        reason = first_error.strip()[:200] or f"{compiler} exited with {build.returncode}"
        return f"{_FAILED} ({reason}); {_OFF}"
    partial.chmod(0o700)  # whatever the umask: nobody else may change code we load
    os.replace(partial, target)
    return target
