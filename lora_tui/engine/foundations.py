"""Several foundations open at once, each with its programs: fp32 and 8da4w of one adapter
side by side, or two bases.

Programs of one foundation share its packed weights; programs of different foundations
share nothing, so each foundation gets an engine of its own (``FoundationEngines``) and its
share of the cores. Nothing here imports torch: the CLI and the UI use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lora_tui.engine.memory import MemorySample, summed
from lora_tui.engine.protocol import EngineClient, EngineEvent, EngineFactory, FoundationEngine
from lora_tui.engine.scaled import ScaledOrigin
from lora_tui.engine.types import GenerationSettings, Message

NAME_SEPARATOR = " · "  # "nobel · 8da4w g32"


@dataclass(frozen=True)
class FoundationPrograms:
    """A foundation weight file and the programs given over it."""

    weights: Path
    programs: tuple[Path, ...]
    label: str = ""  # what tells it from the other foundations open ("8da4w g32"); "" alone

    def name_of(self, program: Path) -> str:
        """The adapter's name in this session: the program's, with the label when several
        foundations are open, so nobel over fp32 and nobel over 8da4w stay apart."""
        return with_label(program.stem, self.label)


def with_label(name: str, label: str) -> str:
    return f"{name}{NAME_SEPARATOR}{label}" if label else name


def labelled(
    groups: Sequence[FoundationPrograms], quantizations: Sequence[str | None]
) -> list[FoundationPrograms]:
    """Each group with its label: its quantization ("fp32", "8da4w g32") when that tells
    it apart, else its folder's name, else its place in the list. One group needs none."""
    if len(groups) < 2:
        return list(groups)
    candidates: list[Callable[[int], str | None]] = [
        lambda i: quantizations[i],
        lambda i: groups[i].weights.resolve().parent.name or None,
        lambda i: f"{groups[i].weights.stem} #{i + 1}",
    ]
    for candidate in candidates:
        labels = [candidate(i) for i in range(len(groups))]
        if None not in labels and len(set(labels)) == len(labels):
            return [replace(g, label=str(label)) for g, label in zip(groups, labels, strict=True)]
    raise AssertionError("the last candidate is always unique")


def core_shares(groups: Sequence[FoundationPrograms], cores: int) -> list[int]:
    """The cores each foundation's engine lays its lanes over, in proportion to its programs
    (at least one each), so lanes across engines do not outnumber the cores."""
    counts = [max(1, len(g.programs)) for g in groups]  # one opened empty may get programs
    return [max(1, round(cores * count / sum(counts))) for count in counts]


# Start the engine of one foundation over this many cores, its events going to the callback.
StartEngine = Callable[[FoundationPrograms, int, Callable[[EngineEvent], None]], FoundationEngine]


class FoundationEngines:
    """The ``EngineClient`` the app talks to: an engine per foundation. Commands go to the
    engine that loaded the adapters they name; events come back through each engine's own
    callback. ``groups`` and ``foundation_of`` are the session's, kept across restarts, so
    a restarted client starts every foundation opened so far."""

    def __init__(
        self,
        groups: list[FoundationPrograms],
        start_one: StartEngine,
        cores: int,
        on_event: Callable[[EngineEvent], None],
        foundation_of: dict[Path, Path],
    ) -> None:
        self.groups, self.foundation_of = groups, foundation_of
        self._start_one, self._cores, self._on_event = start_one, cores, on_event
        started = zip(groups, core_shares(groups, cores), strict=True)
        self.engines = {g.weights: start_one(g, share, on_event) for g, share in started}
        self.owners: dict[str, Path] = {}

    def open_foundation(
        self, weights: Path, quantization: str | None, programs: Sequence[Path] = ()
    ) -> str:
        """Start an engine for another foundation (the palette's "Open foundation"), for
        ``programs`` to load over; returns the label their names carry. ``ValueError``:
        it is open already."""
        if any(w.resolve() == weights.resolve() for w in self.engines):
            raise ValueError(f"{weights}: is open already")
        used = {g.label for g in self.groups}
        label = next(
            c
            for c in (quantization, weights.resolve().parent.name, f"#{len(self.groups) + 1}")
            if c and c not in used
        )
        group = FoundationPrograms(weights, tuple(programs), label)
        self.foundation_of.update({program: weights for program in programs})
        self.groups.append(group)  # a restarted client starts it too
        share = core_shares(self.groups, self._cores)[-1]
        self.engines[weights] = self._start_one(group, share, self._on_event)
        return label

    def load(self, path: Path, name: str | None = None) -> None:
        """Over its foundation: the one it was given with, else the one beside it (a
        program the palette opens; a scaled copy's: the one beside its source), else the
        first."""
        origin = ScaledOrigin.beside(path)
        home = Path(origin.source) if origin else path
        beside = [w for w in self.engines if w.parent.resolve() == home.parent.resolve()]
        weights = (
            self.foundation_of.get(path)
            or self.foundation_of.get(home)
            or (beside or list(self.engines))[0]
        )
        self.foundation_of[path] = weights  # a restarted engine loads it there again
        self.owners[name or path.stem] = weights
        self.engines[weights].load(path, name)

    def unload(self, name: str) -> None:
        if (weights := self.owners.pop(name, None)) is not None:
            self.engines[weights].unload(name)

    def send(
        self, conversations: Mapping[str, Sequence[Message]], settings: GenerationSettings
    ) -> None:
        for weights, names in self._split(list(conversations)):
            self.engines[weights].send({n: conversations[n] for n in names}, settings)

    def cancel(self, names: list[str] | None = None) -> None:
        self._each("cancel", names)

    def clear(self, names: list[str] | None = None) -> None:
        self._each("clear", names)

    def use_base(self, name: str) -> None:
        if (weights := self.owners.get(name)) is not None:
            self.engines[weights].use_base(name)

    def memory(self) -> MemorySample | None:
        # Called from the memory panel's thread while the UI thread may open a foundation:
        # a copy of the engines (taken whole, under the GIL), not the dict as it changes.
        engines = tuple(self.engines.values())
        samples = [s for engine in engines if (s := engine.memory()) is not None]
        return summed(samples) if samples else None

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()

    def _each(self, command: str, names: list[str] | None) -> None:
        if names is None:
            for engine in self.engines.values():
                getattr(engine, command)(None)
            return
        for weights, mine in self._split(names):
            getattr(self.engines[weights], command)(mine)

    def _split(self, names: Iterable[str]) -> list[tuple[Path, list[str]]]:
        by_engine: dict[Path, list[str]] = {}
        for name in names:
            if (weights := self.owners.get(name)) is not None:
                by_engine.setdefault(weights, []).append(name)
        return list(by_engine.items())


def foundations_factory(
    groups: Sequence[FoundationPrograms], start_one: StartEngine, cores: int
) -> EngineFactory:
    """Start an engine per foundation (``start_one(group, its cores, on_event)``), behind
    one client; one foundation's engine gets every core."""
    session = list(groups)
    foundation_of = {p: g.weights for g in groups for p in g.programs}

    def start(on_event: Callable[[EngineEvent], None]) -> EngineClient:
        return FoundationEngines(session, start_one, cores, on_event, foundation_of)

    return start
