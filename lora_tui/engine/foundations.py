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
from lora_tui.engine.protocol import EngineClient, EngineEvent, EngineFactory
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
    total = sum(len(g.programs) for g in groups) or 1
    return [max(1, round(cores * len(g.programs) / total)) for g in groups]


class FoundationEngines:
    """One ``EngineClient`` over an engine per foundation: commands go to the engine that
    loaded the adapter they name; events come back through each engine's own callback."""

    def __init__(self, engines: Mapping[Path, EngineClient], foundation_of: dict[Path, Path]):
        """``foundation_of``: each program's foundation (the app's, kept across restarts)."""
        self.engines = dict(engines)
        self.foundation_of = foundation_of
        self.owners: dict[str, Path] = {}

    def load(self, path: Path, name: str | None = None) -> None:
        """Over its foundation: the one it was given with, else the one beside it (a
        program the palette opens), else the first."""
        beside = [w for w in self.engines if w.parent.resolve() == path.parent.resolve()]
        weights = self.foundation_of.get(path) or (beside or list(self.engines))[0]
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

    def memory(self) -> MemorySample | None:
        samples = [s for engine in self.engines.values() if (s := engine.memory()) is not None]
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
    groups: Sequence[FoundationPrograms],
    start_one: Callable[[FoundationPrograms, int, Callable[[EngineEvent], None]], EngineClient],
    cores: int,
) -> EngineFactory:
    """Start an engine per foundation (``start_one(group, its cores, on_event)``); with one
    foundation, that engine alone."""
    foundation_of = {p: g.weights for g in groups for p in g.programs}
    shares = core_shares(groups, cores)

    def start(on_event: Callable[[EngineEvent], None]) -> EngineClient:
        if len(groups) == 1:
            return start_one(groups[0], cores, on_event)
        started = zip(groups, shares, strict=True)
        engines = {g.weights: start_one(g, share, on_event) for g, share in started}
        return FoundationEngines(engines, foundation_of)

    return start
