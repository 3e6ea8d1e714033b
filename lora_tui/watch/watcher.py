"""The watcher: polls a training run for complete checkpoints, has each new set exported
into the folder of the programs open, and reports the programs that come of it, in order
of step. It knows nothing of how the export runs (``export_child.py`` runs lora-export in a
child process; a test hands it a function), nor of the UI: it reports through a callback,
on the thread that runs it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lora_tui.format import MANIFEST_FILE, ArtifactError, Manifest, one_line
from lora_tui.watch.checkpoints import Checkpoint, Completeness, checkpoint_step

POLL_INTERVAL_S = 2.0


@dataclass(frozen=True)
class ExportJob:
    """``lora-export --base BASE --out OUT --adapter NAME=RUN_DIR``: every checkpoint of the
    run not exported yet, into OUT."""

    base: Path
    out: Path
    name: str
    run_dir: Path


# Runs one export; a failure raises an ArtifactError with its one line.
Export = Callable[[ExportJob], None]


@dataclass(frozen=True)
class WatchedProgram:
    """A program exported from one of the run's checkpoints."""

    name: str  # its name in the manifest, which its pane takes
    path: Path
    step: int


@dataclass(frozen=True)
class Exporting:
    run: str  # the run's folder name: "nobel"
    checkpoints: tuple[str, ...]  # the new ones' folder names: "checkpoint-400"


@dataclass(frozen=True)
class Exported:
    run: str  # the run's folder name: "nobel"
    programs: tuple[WatchedProgram, ...]  # new since the last report, in order of step


@dataclass(frozen=True)
class ExportFailed:
    error: str  # one line: the export's last error line


WatchEvent = Exporting | Exported | ExportFailed


def watch_base(folder: Path, given: Path | None) -> Path:
    """The base to export the run's checkpoints from: ``--watch-base`` when given, else the
    one the folder's programs were exported from, if it is still there."""
    if given is not None:
        if not given.exists():
            raise ArtifactError(f"--watch-base {given}: not found")
        return given
    try:
        source = Path(Manifest.read(folder).base_source).expanduser()
    except ArtifactError as err:
        raise ArtifactError(f"{err}; pass --watch-base DIR, the base to export from") from None
    if not source.exists():
        raise ArtifactError(
            f"{folder / MANIFEST_FILE}: its base {source} is not here; "
            "pass --watch-base DIR, the base to export from"
        )
    return source


def run_programs(folder: Path, run_dir: Path) -> list[WatchedProgram]:
    """The programs in ``folder``'s manifest exported from ``run_dir``'s checkpoints, in
    order of step: their source is in the run (or is the run), and they have a step (their
    own, else their source's ``checkpoint-N``). No manifest yet: none."""
    if not (folder / MANIFEST_FILE).is_file():
        return []
    run = run_dir.resolve()
    found = []
    for name, entry in Manifest.read(folder).programs.items():
        if entry.kind != "adapter" or entry.source is None:
            continue
        source = Path(entry.source).expanduser().resolve()
        if source != run and run not in source.parents:
            continue
        step = entry.step if entry.step is not None else checkpoint_step(source)
        if step is not None:
            found.append(WatchedProgram(name, folder / entry.file, step))
    return sorted(found, key=lambda program: (program.step, program.name))


class RunWatcher:
    """Watches ``run_dir`` and exports its checkpoints into ``folder`` (over ``base``) as
    they come. ``poll`` is one look; ``run`` polls every ``interval_s`` until ``stop``."""

    def __init__(
        self,
        run_dir: Path,
        folder: Path,
        base: Path,
        export: Export,
        interval_s: float = POLL_INTERVAL_S,
        stop_export: Callable[[], None] = lambda: None,
    ) -> None:
        self.run_dir, self.folder, self.base = run_dir, folder, base
        self.name = run_dir.resolve().name
        self.export, self.interval_s, self._stop_export = export, interval_s, stop_export
        self._completeness = Completeness()
        self._reported: set[Path] = set()  # programs reported, by path
        self._exported_steps: set[int] = set()
        self._tried: set[Path] = set()  # checkpoints handed to an export, done or failed
        self._stopping = threading.Event()

    def start(self, on_event: Callable[[WatchEvent], None]) -> None:
        """Report the programs exported from the run already."""
        self._report(on_event)

    def poll(self, on_event: Callable[[WatchEvent], None]) -> None:
        """One look at the run: when a checkpoint not exported or tried before has become
        complete, export the run (lora-export skips what it has) and report what is new."""
        complete = self._completeness.poll(self.run_dir)
        new = [c for c in complete if c.path not in self._tried]
        self._tried.update(c.path for c in new)
        new = [c for c in new if c.step not in self._exported_steps]
        if not new or self._stopping.is_set():
            return
        on_event(Exporting(self.name, tuple(c.path.name for c in new)))
        try:
            self.export(ExportJob(self.base, self.folder, self.name, self.run_dir))
        except ArtifactError as err:
            if not self._stopping.is_set():  # stopped: the export was ended on purpose
                on_event(ExportFailed(one_line(err)))
            return
        self._report(on_event, expected=new)

    def run(self, on_event: Callable[[WatchEvent], None]) -> None:
        """Report what is exported already, then poll until ``stop``."""
        self.start(on_event)
        while not self._stopping.is_set():
            self.poll(on_event)
            self._stopping.wait(self.interval_s)

    def stop(self) -> None:
        """End ``run`` (from another thread), and an export under way with it."""
        self._stopping.set()
        self._stop_export()

    def _report(
        self, on_event: Callable[[WatchEvent], None], expected: Sequence[Checkpoint] = ()
    ) -> None:
        try:
            programs = run_programs(self.folder, self.run_dir)
        except ArtifactError as err:
            on_event(ExportFailed(one_line(err)))
            return
        new = tuple(p for p in programs if p.path not in self._reported)
        self._reported.update(p.path for p in new)
        self._exported_steps.update(p.step for p in programs)
        if new:
            on_event(Exported(self.name, new))
        missing = [c.path.name for c in expected if c.step not in self._exported_steps]
        if missing:  # the export ran and left them out (it skipped them as incomplete)
            on_event(ExportFailed(f"lora-export made no program of {', '.join(missing)}"))
