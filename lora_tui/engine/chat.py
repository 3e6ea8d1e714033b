"""Tokenizer, chat template and stop tokens, as lora-export recorded them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from jinja2 import Template
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

from lora_tui.engine.types import EngineError, Message

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
    def load(
        cls, tokenizer_path: Path, template: str | None, stop_ids: list[int], bos_id: int | None
    ) -> ChatFormat:
        if not tokenizer_path.is_file():
            raise EngineError(f"{tokenizer_path}: tokenizer missing (pass --tokenizer PATH)")
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as err:  # tokenizers raises a bare Exception on malformed files
            raise EngineError(
                f"{tokenizer_path}: not a Hugging Face tokenizer.json ({err})"
            ) from None
        bos = tokenizer.id_to_token(bos_id) if bos_id is not None else None
        return cls(tokenizer, template or FALLBACK_TEMPLATE, frozenset(stop_ids), bos)

    @cached_property
    def _template(self) -> Template:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = _raise
        try:
            return env.from_string(self.template_source)
        except TemplateError as err:
            raise EngineError(f"chat template does not compile: {err}") from None

    def render(self, messages: list[Message]) -> str:
        try:
            return self._template.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True,
                bos_token=self.bos_token or "",
                eos_token="",
            )
        except TemplateError as err:
            raise EngineError(f"chat template failed: {err}") from None

    def encode_chat(self, messages: list[Message]) -> list[int]:
        # Special tokens in the rendered template ("<|im_start|>") map to their ids here.
        return self.tokenizer.encode(self.render(messages), add_special_tokens=False).ids

    def decoder(self) -> DecodeStream:
        """A streaming decoder: whole characters only, spaces kept, specials skipped."""
        return DecodeStream(skip_special_tokens=True)
