"""XNNPACK's packed weights kept on disk, so a later start maps them instead of packing again.

Packing lays each foundation weight out for XNNPACK's kernels; it was most of what a later
start of the demo cost (its panes ready at 10.4 s). ExecuTorch 1.5's XNNPACK backend can
write packed weights to a file and map them back (``XNNWeightsCache``); ``sharing.py``'s
shim points the process's weight cache at such a file. The file's pages are then the page
cache's, one copy for every process that maps it.

One file per foundation, runtime and CPU, in the tool's cache (``packed/``, a folder only
its user may write, as the shim's):

* written once, by a child process (``python -P -m lora_tui.engine.packed``) that loads
  one program over the foundation with the file as its cache, runs one token and exits,
  so the file holds what one load packs, and its write lock goes with the child;
* published whole: the parent checks its trailer, renames it into place and writes a
  sidecar that records the file's size, inode and times, and its SHA-256;
* read by every process of the tool that loads programs (the engine's worker and its
  lanes, the pre-flight check, ``bench``, ``eval``, Ray workers). Each holds a shared lock
  on it while it lives: the backend writes only under an exclusive lock, so nobody writes
  to a published file, and weights it does not hold (each adapter's) are packed in memory.

A file whose sidecar does not match it (cut short, written to, or made by another runtime,
CPU or foundation: the key covers them) is deleted and written again, never trusted.
ExecuTorch also checks the trailer, each entry's bounds and the kernel each entry was
packed for. The file goes into the page cache in 2 MiB pages (``_cache_in_large_pages``),
so each lane maps it with one TLB entry per 2 MiB. Without a sound file (sharing off, no
room, a child that failed) programs pack in memory, as before, and the reason is kept for
the log.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import mmap
import os
import platform
import stat
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lora_tui.common.files import private_folder, write_atomic
from lora_tui.common.lifetime import die_with_parent, start_child
from lora_tui.common.safe_path import NEUTRAL_FOLDER, SAFE_PATH_FLAG
from lora_tui.engine.paths import cache_dir

PACKER_MODULE = "lora_tui.engine.packed"
PACK_TIMEOUT_S = 600.0  # importing the runtime and packing a 1B foundation on a busy machine
LOCK_TIMEOUT_S = PACK_TIMEOUT_S + 60.0  # another process of the tool packing the same one
# The file's last 20 bytes: index start (u64), entry count, magic, version (u32 each).
_TRAILER = struct.Struct("<QIII")
_MAGIC = 0x58505743  # "CWPX", XNNWeightsCache's kCacheMagic
_SIDECAR_VERSION = 1
_MADV_POPULATE_READ = 22  # Linux 5.14+; Python 3.11's mmap module does not name it

# The published file this process holds a shared lock on (kept open for its whole life,
# and by every process forked from it), and the file the shim was given.
_held: dict[Path, int] = {}
_in_use: Path | None = None


@dataclass(frozen=True)
class Packed:
    """What became of a foundation's packed weights in this process."""

    path: Path | None  # the file programs map, or None: they pack in memory
    detail: str  # how it was found or made, or why there is none
    packed_s: float = 0.0  # seconds spent packing it now (0 when it was on disk)


@dataclass(frozen=True)
class _Sidecar:
    """What a published file was when it was published."""

    version: int
    key: str
    foundation: str
    size: int
    inode: int
    mtime_ns: int
    ctime_ns: int
    sha256: str

    def matches(self, found: os.stat_result) -> bool:
        return (found.st_size, found.st_ino, found.st_mtime_ns, found.st_ctime_ns) == (
            self.size,
            self.inode,
            self.mtime_ns,
            self.ctime_ns,
        )


def folder() -> Path:
    return cache_dir() / "packed"


def key_for(foundation: Path, foundation_sha256: str | None = None) -> str:
    """Which file holds ``foundation``'s packed weights: its bytes (the manifest's hash, or
    its path, size, inode and modification time), the runtime, and the CPU's features
    (XNNPACK picks kernels, and so layouts, by them)."""
    found = foundation.stat()
    parts = [
        foundation_sha256 or f"{foundation.resolve()}|{found.st_size}|{found.st_ino}",
        "" if foundation_sha256 else str(found.st_mtime_ns),
        importlib.metadata.version("executorch"),
        importlib.metadata.version("torch"),
        platform.machine(),
        _cpu_flags(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def prepare_packed(foundation: Path, program: Path, foundation_sha256: str | None = None) -> Packed:
    """The sound packed file for ``foundation``, packed now (in a child, over ``program``)
    if there is none; this process then maps it for every program it loads. Call before
    this process's first program loads; a later call changes nothing."""
    try:
        key = key_for(foundation, foundation_sha256)
    except OSError as err:
        return Packed(None, f"cannot read {foundation} ({err.strerror})")
    data = folder() / f"{key}.bin"
    if _in_use is not None:  # one file per process: the backend's cache takes one path
        if _in_use == data:
            return Packed(data, "mapped from disk")
        return Packed(None, "another foundation's packed file is in use in this process")
    refused = private_folder(folder())
    if refused is not None:
        return Packed(None, refused)
    started = time.perf_counter()
    try:
        with _exclusive(folder() / f"{key}.lock"):
            detail = "mapped from disk"
            if not _sound(data):
                _remove(data)
                made = _pack(foundation, program, data)
                if made is not None:
                    return Packed(None, made)
                detail = "packed now, kept on disk"
            refused = _hold(data)
            if refused is None:
                _cache_in_large_pages(data)
    except (OSError, TimeoutError) as err:
        return Packed(None, f"packed weights not kept on disk ({err})")
    refused = refused or _use(data)
    if refused is not None:
        return Packed(None, refused)
    packed_s = time.perf_counter() - started if _in_use and detail.startswith("packed") else 0.0
    return Packed(data, detail, packed_s)


def adopt(data: Path) -> Packed:
    """Map the file another process of the tool prepared (the pre-flight child does: its
    parent prepared it), if it is still sound; else programs here pack in memory."""
    if _in_use is not None:
        return Packed(_in_use, "already in use by this process")
    if not _sound(data):
        return Packed(None, f"{data.name} is no longer sound")
    refused = _hold(data) or _use(data)
    return Packed(None, refused) if refused is not None else Packed(data, "mapped from disk")


def _use(data: Path) -> str | None:
    global _in_use
    from lora_tui.engine.sharing import use_packed_file

    refused = use_packed_file(data)
    if refused is None:
        _in_use = data
    return refused


def in_use() -> Path | None:
    """The packed file this process's programs map, if any."""
    return _in_use


# --- the published file ------------------------------------------------------------------


def _sound(data: Path) -> bool:
    """A file published whole and unchanged since: its sidecar matches it."""
    try:
        found = data.lstat()
        recorded = _Sidecar(**json.loads(_sidecar(data).read_text()))
    except (OSError, ValueError, TypeError):
        return False
    return (
        stat.S_ISREG(found.st_mode)
        and found.st_uid == os.getuid()
        and recorded.version == _SIDECAR_VERSION
        and recorded.key == data.stem
        and recorded.matches(found)
    )


def _publish(written: Path, data: Path, foundation: Path) -> str | None:
    """Check the child's file, move it into place and record it. None, or why not."""
    try:
        with written.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            if size < _TRAILER.size:
                _remove(written)
                return "the packed file was cut short"
            file.seek(size - _TRAILER.size)
            index_start, entries, magic, _ = _TRAILER.unpack(file.read(_TRAILER.size))
            if magic != _MAGIC or entries == 0 or index_start >= size:
                _remove(written)
                return "the packed file has no index"
            # The child's writes left the file in the page cache in small pages: written
            # back and dropped, it comes back in large ones, then is hashed from there.
            os.fsync(file.fileno())
            os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            _cache_in_large_pages(written)
            file.seek(0)
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        os.replace(written, data)
        found = data.stat()  # after the rename, which sets its change time
        sidecar = _Sidecar(
            version=_SIDECAR_VERSION,
            key=data.stem,
            foundation=str(foundation.resolve()),
            size=found.st_size,
            inode=found.st_ino,
            mtime_ns=found.st_mtime_ns,
            ctime_ns=found.st_ctime_ns,
            sha256=digest,
        )
        text = json.dumps(asdict(sidecar), indent=1).encode()
        write_atomic(_sidecar(data), lambda out: out.write(text))
    except OSError as err:
        _remove(written)
        _remove(data)
        return f"the packed file could not be kept ({err.strerror or err})"
    _forget_others(data, sidecar.foundation)
    return None


def _cache_in_large_pages(data: Path) -> None:
    """Read ``data`` into the page cache in 2 MiB pages where it is not there yet, so every
    process that maps it reads its weights through one TLB entry per 2 MiB. Read in by the
    lanes' own faults, it came in 4 KiB pages: decode of a 1B fp32 program 5.8 against
    6.3 tok/s (``lora-tui bench``, 96 tokens, three runs each). Where it is already in the
    cache this only maps it (milliseconds); cold, it reads it (3.4 s for 4.9 GB here), as
    the first answer would."""
    if sys.platform != "linux":
        return
    try:
        with data.open("rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as view:
            view.madvise(mmap.MADV_HUGEPAGE)  # the readahead of its faults: 2 MiB pages
            view.madvise(_MADV_POPULATE_READ)
    except (OSError, ValueError):
        pass  # a kernel without either: the lanes fault it in as before


def _forget_others(data: Path, foundation: str) -> None:
    """Delete files packed from an earlier state of the same foundation, or of one that is
    gone: each is as big as its foundation, and nothing will map it again."""
    for sidecar in folder().glob("*.json"):
        other = sidecar.with_suffix(".bin")
        if other == data:
            continue
        try:
            source = Path(json.loads(sidecar.read_text())["foundation"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if str(source) == foundation or not source.exists():
            try:
                with _exclusive(sidecar.with_suffix(".lock"), timeout_s=0.0):
                    if other.exists() and _held_by_nobody(other):
                        _remove(other)
                        other.with_suffix(".log").unlink(missing_ok=True)
                        # Last, while held: a process that opens it after this makes its own.
                        other.with_suffix(".lock").unlink(missing_ok=True)
            except (OSError, TimeoutError):
                continue  # in use, or being written: another day
    # What a failed or forgotten packing left: its lock and log, with no file.
    for lock in folder().glob("*.lock"):
        if lock.with_suffix(".bin") == data or lock.with_suffix(".json").exists():
            continue
        try:
            with _exclusive(lock, timeout_s=0.0):
                lock.with_suffix(".log").unlink(missing_ok=True)
                lock.unlink(missing_ok=True)
        except (OSError, TimeoutError):
            continue  # packing now


def _held_by_nobody(data: Path) -> bool:
    fd = os.open(data, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _hold(data: Path) -> str | None:
    """Take a shared lock on ``data`` for this process's life (and its forks'). None, or why
    not: a process still writing it (not ours: ours write only under the folder's lock)."""
    if data in _held:
        return None
    fd = os.open(data, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return "the packed file is being written by another process"
    _held[data] = fd
    return None


def _sidecar(data: Path) -> Path:
    return data.with_suffix(".json")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    if path.suffix == ".bin":
        _sidecar(path).unlink(missing_ok=True)


class _exclusive:
    """The folder's lock on one key: one process of the tool packs a foundation at a time,
    and the others wait for its file instead of packing it too."""

    def __init__(self, path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path, self.timeout_s, self.fd = path, timeout_s, -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise TimeoutError(f"another process holds {self.path.name}") from None
                time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)  # closing drops the lock


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor()


# --- the child that packs ----------------------------------------------------------------


def _pack(foundation: Path, program: Path, data: Path) -> str | None:
    """Pack ``foundation`` into ``data`` in a child process. None, or why not."""
    written = data.with_name(f".{data.stem}.{os.getpid()}.partial")
    log = data.with_suffix(".log")  # what the runtime printed; its last line on a failure
    _remove(written)
    command = [
        sys.executable,
        SAFE_PATH_FLAG,
        "-m",
        PACKER_MODULE,
        str(os.getpid()),
        str(foundation.resolve()),
        str(program.resolve()),
        str(written),
    ]
    try:
        with log.open("wb") as output:
            child = start_child(
                lambda: subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    cwd=NEUTRAL_FOLDER,
                )
            )
            try:
                child.wait(timeout=PACK_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                _remove(written)
                return f"packing the foundation took over {PACK_TIMEOUT_S:.0f} s"
    except OSError as err:
        return f"could not start the packing process ({err.strerror})"
    if child.returncode != 0 or not written.is_file():
        _remove(written)
        return f"packing the foundation failed ({_last_line(log) or child.returncode})"
    return _publish(written, data, foundation)


def _last_line(log: Path) -> str:
    try:
        lines = log.read_bytes().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _child_main(parent: int, foundation: str, program: str, written: str) -> None:
    """Load ``program`` over ``foundation`` with ``written`` as the weight cache's file, run
    one token, and end: the backend has written every packed weight and the index by then.
    Everything printed goes to the log; a failure's reason is its last line."""
    die_with_parent(parent)
    import warnings

    warnings.simplefilter("ignore")
    from lora_tui.engine.loading import load_module, warm_up
    from lora_tui.engine.sharing import configure_sharing, use_packed_file
    from lora_tui.format import ArtifactError

    sharing = configure_sharing(True)
    refused = None if sharing.enabled else sharing.detail
    refused = refused or use_packed_file(Path(written))
    if refused is None:
        try:
            module = load_module(Path(program), Path(foundation))
            warm_up(module, Path(program), Path(foundation))
        except ArtifactError as err:
            refused = str(err)
    if refused is not None:
        print(refused, file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)  # no teardown: the index is on disk, and the file closes with the process


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), *sys.argv[2:5])
