"""Process memory as the OS counts it: RSS (what top shows), PSS, USS and the anonymous part."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

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


# --- the whole tool, broken down (the memory panel, benchmarks/tool_memory.py) ---------------
#
# Every process of the tool is read from /proc/PID/smaps, mapping by mapping, and each
# mapping's RSS and PSS go to what holds them. Files say what they are by their path (the
# foundation's .ptd, packed weights on disk, the runtime's libraries). Anonymous memory says
# nothing of itself, so the engine notes where each load put it: the address ranges a load
# added to its process (``Holding``). The worker's first load packs the foundation; its lanes,
# forked from it, inherit those pages at the same addresses, so the worker's holding names
# the packed weights in every lane too. Each adapter's load in a lane (its KV cache, its
# buffers and LoRA weights) is that adapter's.

Ranges = tuple[tuple[int, int], ...]  # [start, end) addresses, sorted, not overlapping
PACKING = "\0packing"  # the holding of the worker's packing load (never an adapter's name)
FOUNDATION_SUFFIX = ".ptd"  # ExecuTorch's named-data file: the foundation's weights


class Role(StrEnum):
    APP = "app"  # the UI process, the root of the tool
    WORKER = "worker"  # an engine's worker: it packs the foundation and forks the lanes
    LANE = "lane"  # forked from a worker: runs programs
    HELPER = "helper"  # anything else: the pre-flight check, a build, multiprocessing's tracker


@dataclass(frozen=True)
class Mapping:
    """One entry of /proc/PID/smaps, in KiB."""

    start: int
    end: int
    path: str  # a file, "[heap]", "[stack]" and the like, or "" for anonymous memory
    rss_kib: int
    pss_kib: int
    private_kib: int  # Private_Clean + Private_Dirty: pages no other process maps

    @property
    def file(self) -> bool:
        return self.path.startswith("/")

    @property
    def anonymous(self) -> bool:
        """Memory the process allocated (malloc's heap and its mapped chunks)."""
        return self.path in ("", "[heap]") or self.path.startswith("[anon:")


@dataclass(frozen=True)
class Holding:
    """What one load added to the anonymous memory of the process that made it."""

    name: str  # the adapter, or ``PACKING``
    process: int
    ranges: Ranges
    # What it allocated inside malloc's heap, where free space the process already had
    # (a lane's, from its worker) takes it without new addresses: malloc's own count.
    heap_kib: float = 0.0


@dataclass(frozen=True)
class ToolLayout:
    """What the engine said of where things are: what each load added, and where."""

    holdings: tuple[Holding, ...] = ()
    # Where packed weights kept on disk are mapped from (None: the tool's cache's packed/).
    packed_dir: str | None = None


@dataclass(frozen=True)
class Share:
    rss_mib: float = 0.0
    pss_mib: float = 0.0

    def __add__(self, other: Share) -> Share:
        return Share(self.rss_mib + other.rss_mib, self.pss_mib + other.pss_mib)


@dataclass(frozen=True)
class ToolMemory:
    """The whole tool's memory by what holds it. The parts add up to the total."""

    foundation_file: Share  # the .ptd's pages the runtime keeps mapped (the embedding table)
    packed_weights: Share  # the foundation laid out for XNNPACK, in memory or mapped from disk
    runtime: Share  # libraries (torch, ExecuTorch, Python) and the interpreters' heaps
    adapters: tuple[tuple[str, Share], ...]  # what each program's load added: KV cache, LoRA
    other_programs: Share  # lanes' memory no load claimed: outputs, the departure scorer's copy
    app: Share  # the UI process
    helpers: Share  # processes that hold no program for long: the pre-flight check, a build
    processes: int
    # The runtime's parts: each package's libraries ("executorch", "torch", "python"),
    # other libraries, and "heaps" (what the interpreters and libraries allocated).
    runtime_parts: tuple[tuple[str, Share], ...] = ()

    @property
    def total(self) -> Share:
        parts = [self.foundation_file, self.packed_weights, self.runtime, self.other_programs]
        parts += [self.app, self.helpers, *(share for _, share in self.adapters)]
        return sum(parts, Share())

    @property
    def adapters_total(self) -> Share:
        return sum((share for _, share in self.adapters), Share())

    def adapter(self, name: str) -> Share | None:
        return dict(self.adapters).get(name)


@dataclass(frozen=True)
class ProcessMaps:
    pid: int
    role: Role
    mappings: tuple[Mapping, ...]
    worker: int | None = None  # a lane's worker, whose packing it inherited


_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+ *(.*)$")
# An smaps entry: its header line, then its fields in the kernel's order; read in one pass
# (a lane has a thousand entries, and the panel reads every process each second).
_ENTRY = re.compile(
    r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+ *([^\n]*)\n"
    r"(?:(?!Rss:)[^\n]*\n)*?Rss: +(\d+) kB\n"
    r"(?:(?!Pss:)[^\n]*\n)*?Pss: +(\d+) kB\n"
    r"(?:(?!Private_Clean:)[^\n]*\n)*?Private_Clean: +(\d+) kB\n"
    r"Private_Dirty: +(\d+) kB",
    re.M,
)


def parse_smaps(text: str) -> list[Mapping]:
    """The mappings of an smaps text (each header line, then ``Field: N kB`` lines)."""
    return [
        Mapping(
            int(start, 16),
            int(end, 16),
            path.strip(),
            int(rss),
            int(pss),
            int(private_clean) + int(private_dirty),
        )
        for start, end, path, rss, pss, private_clean, private_dirty in _ENTRY.findall(text)
    ]


class _MallocInfo(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        ).split()
    ]


def heap_in_use() -> int | None:
    """Bytes malloc has handed out from its heaps (not counting chunks it maps apart) in
    this process; None where glibc's ``mallinfo2`` is missing."""
    try:
        libc = ctypes.CDLL(None)
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallocInfo
    return int(mallinfo2().uordblks)


def anonymous_ranges(pid: int | str = "self") -> Ranges:
    """Where a process's anonymous memory is now (from /proc/PID/maps, which is cheap)."""
    ranges = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            if (match := _HEADER.match(line.rstrip("\n"))) is None:
                continue
            path = match[3].strip()
            if path in ("", "[heap]") or path.startswith("[anon:"):
                ranges.append((int(match[1], 16), int(match[2], 16)))
    return _merged(ranges)


def added(before: Ranges, after: Ranges) -> Ranges:
    """The addresses in ``after`` that ``before`` did not hold: what happened in between
    mapped them (a new chunk, the heap grown)."""
    return _subtract(after, before)


def attribute(processes: Sequence[ProcessMaps], layout: ToolLayout) -> ToolMemory:
    """Every mapping's RSS and PSS, given to what holds it (``ToolMemory``)."""
    parts = _Parts()
    packing = {h.process: h.ranges for h in layout.holdings if h.name == PACKING}
    for process in processes:
        if process.role in (Role.APP, Role.HELPER):
            part = "app" if process.role is Role.APP else "helpers"
            for m in process.mappings:
                parts.give(part, m.rss_kib, m.pss_kib)
            continue
        # Later loads first: an address freed and used again is the later load's.
        own = [h for h in reversed(layout.holdings) if h.process == process.pid]
        holdings = [(h.name, h.ranges) for h in own if h.name != PACKING]
        inherited = packing.get(process.pid) or packing.get(process.worker or -1)
        if inherited is not None:
            holdings.append((PACKING, inherited))
        own_heap = 0.0  # KiB of its heap only it maps that no load's addresses claimed
        for m in process.mappings:
            if m.file:
                part = _file_part(m.path, layout.packed_dir)
                parts.give(part, m.rss_kib, m.pss_kib, within=_library(m.path))
            elif m.anonymous:
                own_heap += _split(m, holdings, process.role, parts)
            else:  # the stack, the vDSO
                parts.give("runtime", m.rss_kib, m.pss_kib, within="heaps")
        for holding in own:  # what each load allocated inside the heap is its, not runtime
            taken = min(holding.heap_kib, own_heap)
            if holding.name != PACKING and taken > 0:
                own_heap -= taken
                parts.give(holding.name, taken, taken, adapter=True)
                parts.give("runtime", -taken, -taken, within="heaps")
    return parts.tool(len(processes))


class _Parts:
    """RSS and PSS in KiB given to each part of the tool, and to each adapter."""

    def __init__(self) -> None:
        self.kib: dict[str, list[float]] = {}
        self.adapters: dict[str, list[float]] = {}
        self.runtime: dict[str, list[float]] = {}

    def give(
        self, part: str, rss: float, pss: float, adapter: bool = False, within: str = "heaps"
    ) -> None:
        """``adapter``: ``part`` names an adapter; ``within``: the runtime's part."""
        places = [(self.adapters if adapter else self.kib, part)]
        if part == "runtime":
            places.append((self.runtime, within))
        for place, key in places:
            share = place.setdefault(key, [0.0, 0.0])
            share[0] += rss
            share[1] += pss

    def tool(self, processes: int) -> ToolMemory:
        def share(kib: list[float] | None) -> Share:
            return Share(kib[0] / 1024, kib[1] / 1024) if kib else Share()

        return ToolMemory(
            foundation_file=share(self.kib.get("foundation_file")),
            packed_weights=share(self.kib.get("packed_weights")),
            runtime=share(self.kib.get("runtime")),
            adapters=tuple((name, share(kib)) for name, kib in self.adapters.items()),
            other_programs=share(self.kib.get("other_programs")),
            app=share(self.kib.get("app")),
            helpers=share(self.kib.get("helpers")),
            processes=processes,
            runtime_parts=tuple((name, share(kib)) for name, kib in self.runtime.items()),
        )


def _split(m: Mapping, holdings: list[tuple[str, Ranges]], role: Role, parts: _Parts) -> float:
    """An engine process's anonymous mapping: each holding gets the share of it its ranges
    cover (pages assumed spread evenly over it); the rest is the runtime's, or in a lane,
    the pages only it maps outside its heap, its programs'. Returns what of the rest, in a
    lane's heap, only the lane maps (KiB): where its loads' heap allocations are."""
    left: Ranges = ((m.start, m.end),)
    size = max(1, m.end - m.start)
    for name, ranges in holdings:
        covered = _intersect(left, ranges)
        if not covered:
            continue
        left = _subtract(left, covered)
        part = _length(covered) / size
        if name == PACKING:
            parts.give("packed_weights", m.rss_kib * part, m.pss_kib * part)
        else:
            parts.give(name, m.rss_kib * part, m.pss_kib * part, adapter=True)
    rest = _length(left) / size
    if role is Role.LANE and m.path != "[heap]":
        # What a lane made since its fork that no load claimed is its programs' (a reply's
        # outputs, the scorer's copy of the base): the pages only it maps.
        private = min(m.private_kib, m.rss_kib) * rest
        parts.give("other_programs", private, private)
        parts.give("runtime", m.rss_kib * rest - private, m.pss_kib * rest - private)
        return 0.0
    parts.give("runtime", m.rss_kib * rest, m.pss_kib * rest)
    return min(m.private_kib, m.rss_kib) * rest if role is Role.LANE else 0.0


def measure_tool(root: int, layout: ToolLayout) -> ToolMemory:
    """The tool rooted at ``root`` (the UI process), every process under it attributed."""
    if layout.packed_dir is None:
        from lora_tui.engine.packed import folder as packed_folder  # imports nothing heavy

        layout = replace(layout, packed_dir=str(packed_folder()))
    return attribute(read_tool(root), layout)


def read_tool(root: int) -> list[ProcessMaps]:
    """Every process of the tool rooted at ``root``, its role and its mappings. An engine's
    worker is the process whose children carry its own command line: its lanes, which it
    forked (every other child of the tool was started afresh). A process that ends while
    it is read is left out."""
    top = psutil.Process(root)
    listed: dict[int, tuple[list[str], int]] = {}  # pid -> (command line, parent)
    for process in [top, *top.children(recursive=True)]:
        try:
            listed[process.pid] = (process.cmdline(), process.ppid())
        except psutil.Error:
            continue
    lanes = {
        pid: parent
        for pid, (command, parent) in listed.items()
        if parent != root and parent in listed and listed[parent][0] == command
    }
    processes = []
    for pid in listed:
        role, worker = Role.HELPER, None
        if pid == root:
            role = Role.APP
        elif pid in lanes:
            role, worker = Role.LANE, lanes[pid]
        elif pid in lanes.values():
            role = Role.WORKER
        try:
            with open(f"/proc/{pid}/smaps") as smaps:
                mappings = tuple(parse_smaps(smaps.read()))
        except OSError:
            continue
        processes.append(ProcessMaps(pid, role, mappings, worker))
    return processes


_PACKAGES = {"executorch": ("/executorch/",), "torch": ("/torch/", "/torchao/", "/functorch/")}


def _library(path: str) -> str:
    """Which of the runtime's parts a mapped file is: a package's libraries by the folder
    it sits in, or another library."""
    for package, folders in _PACKAGES.items():
        if any(folder in path for folder in folders):
            return package
    name = path.rsplit("/", 1)[-1]
    if name.startswith(("python", "libpython")) or "/lib-dynload/" in path:
        return "python"
    return "libraries"


def _file_part(path: str, packed_dir: str | None) -> str:
    if path.endswith(FOUNDATION_SUFFIX):
        return "foundation_file"
    if packed_dir and path.startswith(packed_dir.rstrip("/") + "/"):
        return "packed_weights"
    return "runtime"


def _merged(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif start < end:
            out.append((start, end))
    return tuple(out)


def _intersect(a: Ranges, b: Ranges) -> Ranges:
    out = []
    for start, end in a:
        for other_start, other_end in b:
            low, high = max(start, other_start), min(end, other_end)
            if low < high:
                out.append((low, high))
    return _merged(out)


def _subtract(a: Ranges, b: Ranges) -> Ranges:
    out = []
    for start, end in a:
        pieces = [(start, end)]
        for cut_start, cut_end in b:
            pieces = [
                piece
                for low, high in pieces
                for piece in ((low, min(high, cut_start)), (max(low, cut_end), high))
                if piece[0] < piece[1]
            ]
        out.extend(pieces)
    return _merged(out)


def _length(ranges: Ranges) -> int:
    return sum(end - start for start, end in ranges)
