"""Process memory as the OS counts it: RSS (what top shows), PSS, USS and the anonymous part."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psutil

MIB = 2**20


@dataclass(frozen=True)
class MemorySample:
    rss_mib: float
    pss_mib: float | None  # shared pages divided among the processes that map them
    uss_mib: float | None  # pages only this process maps
    anon_mib: float | None  # RssAnon: private memory (adapters, KV caches, packed weights)
    file_mib: float | None  # RssFile: file pages mapped, counted once per mapping
    processes: int = 1  # summed over this many (the engine's worker and lanes)


def sample(pid: int | None = None, detailed: bool = True) -> MemorySample:
    """Read memory of ``pid`` (this process by default). ``detailed`` adds PSS/USS (reads smaps)."""
    process = psutil.Process(pid)
    rss = process.memory_info().rss / MIB
    pss = uss = None
    if detailed:
        try:
            full = process.memory_full_info()
            pss, uss = getattr(full, "pss", 0) / MIB or None, full.uss / MIB
        except (psutil.AccessDenied, OSError):
            pass
    anon, file = _status_fields(process.pid)
    return MemorySample(rss, pss, uss, anon, file)


def _status_fields(pid: int) -> tuple[float | None, float | None]:
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except OSError:
        return None, None

    def kib(name: str) -> float | None:
        value = fields.get(name)
        return int(value.split()[0]) / 1024 if value else None

    return kib("RssAnon"), kib("RssFile")


def sample_tree(pid: int, leave_out: str | None = None) -> MemorySample:
    """``pid`` and every process under it, summed, leaving out those whose command line
    holds ``leave_out``. Summed RSS counts a page every process maps once per process;
    summed PSS splits it among them: the tree's true cost."""
    root = psutil.Process(pid)
    samples = []
    for process in [root, *root.children(recursive=True)]:
        try:
            if leave_out is None or leave_out not in " ".join(process.cmdline()):
                samples.append(sample(process.pid))
        except (psutil.Error, OSError):
            continue  # it ended between the listing and the reading
    return summed(samples)


def summed(samples: list[MemorySample]) -> MemorySample:
    """Several processes' samples as one (PSS adds up; RSS counts shared pages in each)."""
    return MemorySample(
        sum(s.rss_mib for s in samples),
        _total(s.pss_mib for s in samples),
        _total(s.uss_mib for s in samples),
        _total(s.anon_mib for s in samples),
        _total(s.file_mib for s in samples),
        sum(s.processes for s in samples),
    )


def _total(values: Iterable[float | None]) -> float | None:
    listed = list(values)
    return None if any(v is None for v in listed) else sum(listed)  # type: ignore[arg-type]
