"""Hugging Face tokenizer conventions: which ids start a text and which end a reply, and
where the chat template is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lora_tui.format.program import CHAT_TEMPLATE_FILE

# Chat templates end a turn with one of these; each one the template uses is a stop token.
END_OF_TURN_TOKENS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
)
# End-of-document tokens (Llama 3's, Qwen's and SmolLM2's). No template writes them, but a
# model may end a reply with one; generation_config.json lists them where the model needs it.
END_OF_TEXT_TOKENS = ("<|end_of_text|>", "<|endoftext|>")


def special_ids(
    tokenizer: Any,
    chat_template: str | None,
    configs: list[dict[str, Any]],
    special_tokens: dict[str, Any],
) -> tuple[int | None, list[int]]:
    """(bos id, stop ids) from model/generation configs, the tokenizer's special tokens and
    the end-of-turn markers the chat template uses. ``tokenizer`` is a ``tokenizers.Tokenizer``.
    """

    def token_id(token: Any) -> int | None:
        if isinstance(token, dict):
            token = token.get("content")
        return tokenizer.token_to_id(token) if isinstance(token, str) else None

    stop_ids: list[int] = []

    def add_stop(value: Any) -> None:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int) and item not in stop_ids:
                stop_ids.append(item)

    bos_id = None
    for config in configs:
        add_stop(config.get("eos_token_id"))
        if bos_id is None and isinstance(config.get("bos_token_id"), int):
            bos_id = config["bos_token_id"]
    add_stop(token_id(special_tokens.get("eos_token")))
    if bos_id is None:
        bos_id = token_id(special_tokens.get("bos_token"))
    for marker in END_OF_TURN_TOKENS:
        if chat_template and marker in chat_template:
            add_stop(tokenizer.token_to_id(marker))
    return bos_id, stop_ids


def chat_template_of(tokenizer_config: dict[str, Any], folder: Path) -> str | None:
    """The chat template from ``tokenizer_config.json`` (a string, or named templates) or
    from ``chat_template.jinja`` beside it, as transformers saves it."""
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if isinstance(template, str) and template:
        return template
    template_file = folder / CHAT_TEMPLATE_FILE
    return template_file.read_text(encoding="utf-8") if template_file.is_file() else None
