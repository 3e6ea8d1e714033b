"""The demo's assets ship with the package."""

from __future__ import annotations

import json

from lora_tui.demo.build import (
    shipped_adapters,
    suggested_prompts,
)


def test_shipped_adapters_and_suggestions_exist() -> None:
    for name, path in shipped_adapters().items():
        config = json.loads((path / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA", name
        assert (path / "adapter_model.safetensors").stat().st_size > 0
    suggestions = suggested_prompts()
    assert set(suggestions) == {"nobel", "executorch"}
    assert all(len(prompts) >= 3 for prompts in suggestions.values())
