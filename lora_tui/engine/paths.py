"""Where lora-tui keeps what it builds for the user: the sharing shim and the demo."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """``LORA_TUI_CACHE`` if set, else the platform's cache folder (``~/.cache/lora-tui`` or
    ``$XDG_CACHE_HOME/lora-tui`` on Linux)."""
    override = os.environ.get("LORA_TUI_CACHE")
    if override:
        return Path(override)
    return platformdirs.user_cache_path("lora-tui", appauthor=False)
