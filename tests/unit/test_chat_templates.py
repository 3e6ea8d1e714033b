"""Chat templates are a stranger's code, rendered with limits on steps, time and size
(``lora_tui/engine/templates.py``, issue 42): each limit is one line, and the real templates
render exactly as Jinja renders them without limits."""

from __future__ import annotations

from datetime import datetime

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

import lora_tui.engine.templates
from lora_tui.engine.chat import FALLBACK_TEMPLATE, ChatFormat, _raise
from lora_tui.engine.types import EngineError, Message
from tests.support.tiny import CHATML_TEMPLATE, TEMPLATES

CONVERSATION = [
    Message("system", "You are terse."),
    Message("user", "Who won? [/INST]"),
    Message("assistant", "<think>Hm.</think>Clarke, Devoret and Martinis."),
    Message("user", "And in 2024?"),
]


def render(template: str, messages: list[Message] = CONVERSATION) -> str:
    return ChatFormat(None, template, frozenset(), "<s>").render(messages)  # type: ignore[arg-type]


def refusal(template: str, messages: list[Message] = CONVERSATION) -> str:
    with pytest.raises(EngineError) as raised:
        render(template, messages)
    assert "\n" not in str(raised.value)
    return str(raised.value)


def nested(loops: int, over: str, body: str = "") -> str:
    return (
        "".join(f"{{% for v{i} in {over} %}}" for i in range(loops))
        + body
        + ("{% endfor %}" * loops)
    )


def test_nested_range_loops_stop_at_the_step_limit() -> None:
    # Never finished: Jinja's sandbox caps one range at 100000 items, not two nested.
    message = refusal(nested(2, "range(100000)"))
    assert message == "chat template stopped: it took over 1,000,000 loop steps and calls"


def test_nested_loops_over_the_messages_stop_too(monkeypatch: pytest.MonkeyPatch) -> None:
    many = [Message("user", f"question {n}") for n in range(101)]
    assert "1,000,000 loop steps" in refusal(nested(3, "messages"), many)  # 101**3 steps
    monkeypatch.setattr(lora_tui.engine.templates, "MAX_STEPS", 100_000)  # for a shorter test
    # So do loops over copies of the list, which is not the list the template was given.
    assert "100,000 loop steps" in refusal(nested(3, "messages[::-1]|list"), many)


def test_a_render_stops_at_its_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lora_tui.engine.templates, "MAX_SECONDS", 0.05)
    assert refusal(nested(2, "range(100000)")) == "chat template stopped: it took over 0.05 s"


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        (nested(1, "range(100000)", "{{ 'x' * 100000 }}"), "an output of 1,100,000"),
        ("{{ 'x' * 10000000000 }}", "a string or list of 10,000,000,000"),
        (nested(1, "range(64)", "{% set ns.s = ns.s ~ ns.s %}"), "a string or list of"),
        (nested(1, "range(64)", "{% set ns.s = ns.s + ns.s %}"), "a string or list of"),
        ("{{ 'x'|center(10000000000) }}", "a width or count of 10,000,000,000"),
        ("{{ '%999999999s' % 'x' }}", "format widths of 999,999,999"),
        ("{{ '{:>999999999}'.format('x') }}", "format widths of 999,999,999"),
        ("{% set s = 'x' * 1000000 %}{{ ([s] * 1000)|join }}", "a string or list of"),
        ("{% set s = 'x' * 1000000 %}{{ s.replace('', s) }}", "a string or list of"),
        ("{% set s = 'x' * 900000 %}{{ s|join(s) }}", "a string or list of 810,000,900,000"),
        ("{{ range(100000)|map('center', 900000)|join }}", "it built over"),
        ("{{ 2 ** 100000 }}", "an integer of over 4096 bits"),
    ],
)
def test_a_template_that_builds_too_much_stops_in_one_line(template: str, needle: str) -> None:
    message = refusal("{% set ns = namespace(s='ab') %}" + template)
    assert message.startswith("chat template stopped: ") and needle in message, message


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
        ("{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}", "RecursionError"),
        ("{{ 1 // 0 }}", "ZeroDivisionError"),  # was a traceback
        ("{{ raise_exception('roles must alternate') }}", "roles must alternate"),
        ("{{ lipsum(1000000) }}", "'lipsum' is undefined"),
    ],
)
def test_a_failing_template_is_one_line(template: str, needle: str) -> None:
    message = refusal(template)
    assert message.startswith("chat template failed: ") and needle in message, message


@pytest.mark.parametrize("template", ["{% for %}", "{{" + "(" * 5000 + "1" + ")" * 5000 + "}}"])
def test_a_template_that_does_not_compile_is_one_line(template: str) -> None:
    assert refusal(template).startswith("chat template does not compile: ")


@pytest.mark.parametrize(
    "template",
    [*(path.read_text() for path in sorted(TEMPLATES.glob("*.jinja"))), CHATML_TEMPLATE],
    ids=[*(path.stem for path in sorted(TEMPLATES.glob("*.jinja"))), "chatml"],
)
def test_real_templates_render_as_jinja_renders_them(template: str) -> None:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    plain = env.from_string(template)
    for messages in (CONVERSATION, CONVERSATION[1:2], CONVERSATION[1:]):
        for thinking in (False, True):
            expected = plain.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True,
                bos_token="<s>",
                eos_token="",
                enable_thinking=thinking,
            )
            chat = ChatFormat(None, template, frozenset(), "<s>")  # type: ignore[arg-type]
            assert chat.render(messages, thinking) == expected


def test_loop_variables_work_through_the_count() -> None:
    template = (
        "{% for m in messages if m.role != 'system' %}"
        "{{ loop.index }}/{{ loop.length }}{{ 'L' if loop.last }}{{ loop.cycle('a', 'b') }}"
        "{% else %}none{% endfor %}"
    )
    assert render(template) == "1/3a2/3b3/3La"
    assert render(FALLBACK_TEMPLATE).endswith("<|im_start|>assistant\n")
