"""Tokenizer, chat template and stop tokens: from lora-export's manifest, or from the
tokenizer's own files (``tokenizer_config.json``, ``chat_template.jinja``,
``generation_config.json``, ``config.json``) as Hugging Face saves them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import Template
from jinja2.exceptions import TemplateError
from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

from lora_tui.engine.templates import BoundedEnvironment, TemplateLimit, render_bounded
from lora_tui.engine.types import EngineError, Message
from lora_tui.format import (
    GENERATION_CONFIG_FILE,
    MODEL_CONFIG_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    Manifest,
    chat_template_of,
    one_line,
    read_json_file,
    special_ids,
)

# Used when a model ships no template: ChatML, which SmolLM2 and many small models use.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _raise(message: str) -> None:
    raise TemplateError(message)


@dataclass
class ChatFormat:
    tokenizer: Tokenizer
    template_source: str
    stop_ids: frozenset[int]
    bos_token: str | None

    @classmethod
    def from_files(cls, source: Path, manifest: Manifest | None = None) -> ChatFormat:
        """``source`` is a tokenizer folder or a ``tokenizer.json``; its folder holds the
        configs. lora-export's manifest, when given, says which template and stop ids it used."""
        path = source / TOKENIZER_FILE if source.is_dir() else source
        folder = path.parent
        if not path.is_file():
            raise EngineError(
                f"{path}: no tokenizer (pass --tokenizer: a Hugging Face tokenizer folder "
                "or its tokenizer.json)"
            )
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception on malformed files
            raise EngineError(f"{path}: not a Hugging Face tokenizer.json ({err})") from None
        if manifest is not None:
            template, bos_id, stop_ids = manifest.chat_template, manifest.bos_id, manifest.stop_ids
        else:
            token_config = _optional_json(folder / TOKENIZER_CONFIG_FILE)
            template = chat_template_of(token_config, folder)
            configs = [
                _optional_json(folder / n) for n in (GENERATION_CONFIG_FILE, MODEL_CONFIG_FILE)
            ]
            bos_id, stop_ids = special_ids(tokenizer, template, configs, token_config)
        bos = tokenizer.id_to_token(bos_id) if bos_id is not None else None
        return cls(tokenizer, template or FALLBACK_TEMPLATE, frozenset(stop_ids), bos)

    def for_program(self, eos_ids: list[int], bos_id: int | None) -> ChatFormat:
        """This format with what a program says of itself: its end ids stop it too."""
        bos = self.bos_token
        if bos is None and bos_id is not None:
            bos = self.tokenizer.id_to_token(bos_id)
        return dataclasses.replace(self, stop_ids=self.stop_ids | set(eos_ids), bos_token=bos)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @cached_property
    def _template(self) -> Template:
        env = BoundedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = _raise
        # Llama 3's template dates its system prompt with this, as transformers provides it.
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            return env.from_string(self.template_source)
        except Exception as err:  # a syntax error, or nesting deep enough to recurse for ever
            raise EngineError(f"chat template does not compile: {one_line(err)}") from None

    @property
    def supports_thinking(self) -> bool:
        """Whether the template has a thinking switch (Qwen3's ``enable_thinking``)."""
        return "enable_thinking" in self.template_source

    def render(self, messages: list[Message], thinking: bool = False) -> str:
        """The conversation as the template writes it, within the limits of
        ``templates.py``: the output may be a million characters more than four times the
        messages (a template may write each more than once, Qwen3's reads them twice)."""
        max_chars = 1_000_000 + sum(4 * len(m.content) + 64 for m in messages)
        template = self._template  # one that does not compile says so itself
        try:
            return render_bounded(
                template,
                max_chars,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True,
                bos_token=self.bos_token or "",
                eos_token="",
                # Qwen3 thinks at length before it answers unless told not to; a comparison
                # wants the answers, so thinking is off unless the user turns it on.
                enable_thinking=thinking,
            )
        except TemplateLimit as err:
            raise EngineError(f"chat template stopped: {err}") from None
        except Exception as err:  # raise_exception, or the template's own bug (1/0, recursion)
            raise EngineError(f"chat template failed: {one_line(err)}") from None

    def encode_chat(self, messages: list[Message], thinking: bool = False) -> list[int]:
        # Special tokens in the rendered template ("<|im_start|>") map to their ids here.
        text = self.render(messages, thinking)
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decoder(self) -> DecodeStream:
        """A streaming decoder: whole characters only, spaces kept, specials skipped."""
        return DecodeStream(skip_special_tokens=True)


def _optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    value = read_json_file(path)
    return value if isinstance(value, dict) else {}
