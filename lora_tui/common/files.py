"""Write files so that a reader never sees half of one: temporary name first, then rename.
And where lora-tui keeps its logs: the user's state folder, never a fixed name in /tmp."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import platformdirs


def write_atomic(path: Path, write: Callable[[BinaryIO], object], replace: bool = True) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place. A full
    disk or a missing folder leaves no half-written file behind (the OSError says why). The
    file takes the mode the umask gives a new file (0644 under the usual 022), as the files
    beside it do. ``replace=False``: a file already at ``path`` stays, and the write fails
    with ``FileExistsError``."""
    fd, tmp = _new_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _publish_new(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_file_beside(path: Path) -> tuple[int, Path]:
    """An empty file under a name nobody has, beside ``path``. Made with ``O_EXCL`` and mode
    0666, which the umask trims, where ``mkstemp`` would make it 0600 whatever the umask."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name beside {path.name}")


def _publish_new(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` only if no file has it. A hard link fails on an
    existing name, even one made a moment ago, where a rename would replace it."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: look, then rename
        if os.path.lexists(path):
            raise FileExistsError(f"{path}: exists") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda out: out.write(data))


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def state_log(name: str, fresh: bool = False) -> Path:
    """A log of ours, ready to append to, in the user's state folder (``~/.local/state/
    lora-tui``, created 0700). A fixed name in /tmp was another user's to own or to plant a
    symlink at; here the log is created without following one. ``fresh`` empties it."""
    folder = platformdirs.user_state_path("lora-tui", appauthor=False)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    os.close(os.open(path, flags | (os.O_TRUNC if fresh else 0), 0o600))
    return path


def private_folder(path: Path) -> str | None:
    """Make ``path`` (0700) if it is missing. None if what the tool keeps there may be
    trusted (a folder of this user's that nobody else may write to), else the one line
    that says why not."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = path.lstat()
    except OSError as err:
        return f"cannot make {path} ({err.strerror})"
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        return f"{path} is not a folder of this user's"
    if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by others ({stat.S_IMODE(found.st_mode):o})"
    return None
