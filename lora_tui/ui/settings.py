"""Generation settings as the app's dialogs read them, and as each reply is sent.

The parsers turn what a person typed into a value or a ``ValueError`` that says, in one
line, what is allowed."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace

from lora_tui.engine.types import GenerationSettings
from lora_tui.format import MAX_SCALE, MIN_SCALE, ArtifactError, check_scale


def parse_temperature(answer: str) -> float:
    try:
        value = float(answer)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 2:
        raise ValueError("temperature must be a number from 0 to 2")
    return value


def parse_max_tokens(answer: str) -> int:
    if not answer.isdigit() or int(answer) < 1:
        raise ValueError("max new tokens must be a whole number above 0")
    return int(answer)


def parse_seed(answer: str) -> int:
    try:
        value = int(answer)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError("seed: not a valid value")
    return value


def parse_adapter_scale(answer: str, adapters: Iterable[str]) -> tuple[str, float]:
    """``nobel 0.5``: an adapter open and the LoRA scale to open it at once more (the
    adapter's name may hold spaces; the scale is the last word)."""
    name, _, scale = answer.strip().rpartition(" ")
    name = name.strip()
    if name not in adapters:
        raise ValueError(f"no adapter named '{name}' is open (ADAPTER SCALE, as: nobel 0.5)")
    try:
        return name, check_scale(float(scale))
    except (ValueError, ArtifactError):
        raise ValueError(
            f"scale: '{scale}' is not a number from {MIN_SCALE:g} to {MAX_SCALE:g}"
        ) from None


def parse_pane_temperature(answer: str) -> float:
    try:
        return parse_temperature(answer)
    except ValueError:
        raise ValueError("temperature: not a valid value") from None


class SentSettings:
    """What each adapter's reply in progress (or its last) was sent with: the app's settings
    with the pane's own over them. A sampled reply without a fixed seed gets a fresh one,
    which the results file keeps, so it can be repeated."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._by_adapter: dict[str, GenerationSettings] = {}

    def group(
        self, base: GenerationSettings, overrides: dict[str, dict[str, float | int]]
    ) -> dict[GenerationSettings, list[str]]:
        """Adapters (name -> own overrides) by the settings they answer with."""
        groups: dict[GenerationSettings, list[str]] = {}
        for name, own in overrides.items():
            settings = replace(base, **own)  # type: ignore[arg-type]
            if settings.temperature > 0 and "seed" not in own:
                settings = replace(settings, seed=self._rng.randrange(2**31))
            self._by_adapter[name] = settings
            groups.setdefault(settings, []).append(name)
        return groups

    def of(self, adapter: str, default: GenerationSettings) -> GenerationSettings:
        return self._by_adapter.get(adapter, default)
