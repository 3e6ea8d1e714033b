"""Chat templates rendered with limits. A template is a stranger's code: Jinja's sandbox keeps
it away from Python's internals, but not from running for ever (``range`` is capped at
100000 items, two nested loops over it are not) or from filling memory.

What ``render_bounded`` bounds, per render:

* time: every loop iteration (any ``for``: over a range, the messages, a slice, a sorted copy
  or a filtered view of them, in a macro or a recursive loop) and every call (a macro, a
  method, a filter, a global) is a step; a render takes at most ``MAX_STEPS`` steps and
  ``MAX_SECONDS`` of wall-clock time, checked at each step;
* size: the output stops past ``max_chars``. So does any one string or list a template
  builds (with ``+``, ``~``, ``*``, ``%``, ``join``, ``replace``, a filter or a method),
  checked before it is built where its size is known beforehand and else as it returns, and
  what a template prints, before it is turned into text. Integer arguments (widths, counts)
  and format widths are at most ``max_chars``, integers at most ``MAX_INT_BITS``, and all the
  strings a render builds together at most ``BUILT_FACTOR`` times ``max_chars``.

Not bounded: the time one filter takes over values inside those limits (sorting a list of a
million items, say). Each limit ends the render with a ``TemplateLimit``, a
``TemplateError``, whose message says which.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_STEPS = 1_000_000  # a real template takes tens per message
MAX_SECONDS = 5.0
MAX_INT_BITS = 4096  # for ``*`` and ``**`` on integers; chat templates count, at most
BUILT_FACTOR = 64  # all the strings built, together, against the output's limit


class TemplateLimit(TemplateError):
    """A render went past one of its limits."""


class _Budget:
    """One render's steps, deadline and sizes."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.steps = 0
        self.built = 0
        self.deadline = time.monotonic() + MAX_SECONDS
        # Sizes of the containers measured, each kept alive so its id means it to the end.
        self.measured: dict[int, tuple[Any, int]] = {}

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimit(f"it took over {MAX_STEPS:,} loop steps and calls")
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"it took over {MAX_SECONDS:g} s")

    def size(self, size: int, what: str = "a string or list") -> None:
        if size > self.max_chars:
            raise TemplateLimit(f"{what} of {size:,} (over the limit of {self.max_chars:,})")

    def build(self, chars: int) -> None:
        """Count a new string of ``chars`` against the one and the total limits."""
        self.size(chars)
        self.built += chars
        if self.built > BUILT_FACTOR * self.max_chars:
            raise TemplateLimit(f"it built over {BUILT_FACTOR * self.max_chars:,} characters")

    def measure(self, value: Any) -> int:
        """A value's size as text, roughly: a string's length; a container's items and the
        sizes of what they hold (a list of one long string repeated is that string many
        times over once printed). Stops counting past the limit."""
        if isinstance(value, str):
            return len(value)
        if not isinstance(value, list | tuple | dict | set | frozenset):
            return 0  # numbers (bounded in bits), None, loop and namespace objects
        if (known := self.measured.get(id(value))) is not None:
            return known[1]
        size = len(value)
        for item in value.items() if isinstance(value, dict) else value:
            size += self.measure(item)
            if size > self.max_chars:
                break
        self.measured[id(value)] = (value, size)
        return size


_BUDGET: ContextVar[_Budget] = ContextVar("template_budget")


def render_bounded(template: Any, max_chars: int, **context: Any) -> str:
    """``template``, from a ``BoundedEnvironment``, rendered within the limits above."""
    token = _BUDGET.set(budget := _Budget(max_chars))
    try:
        parts, size = [], 0
        for part in template.generate(**context):
            size += len(part)
            budget.size(size, "an output")
            parts.append(part)
        return "".join(parts)
    finally:
        _BUDGET.reset(token)


def _budget() -> _Budget:
    try:
        return _BUDGET.get()
    except LookupError:  # rendered without render_bounded: its default limits
        return _Budget(1_000_000)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """``iterable``, a step per item."""
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _joined(*parts: Any) -> str:
    """The ``~`` operator, its size checked before it is joined."""
    budget = _budget()
    budget.build(sum(map(budget.measure, parts)))
    return "".join(map(str, parts))


def _printed(value: Any) -> Any:
    """What ``{{ }}`` prints, checked before it is turned into text."""
    _budget().size(_budget().measure(value), "an output")
    return value


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every loop and call counted and what a template builds
    measured; render its templates with ``render_bounded``."""

    intercepted_binops = frozenset({"*", "+", "%", "**"})
    # What the code ``_CountLoops`` puts in calls: the environment's own attributes, which
    # no template can reach or replace.
    counted = staticmethod(_counted)
    joined = staticmethod(_joined)

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_printed, **options)
        self.globals.pop("lipsum", None)  # paragraphs of lorem ipsum, as many as asked
        self.filters = {name: _bounded(f) for name, f in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _CountLoops().visit(super()._parse(source, name, filename))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (_counted(args[0]), *args[1:])
        call = functools.partial(super().call, __context, __obj)
        return _checked_call(__obj, call, args, kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(_budget(), operator, left, right)
        return super().call_binop(context, operator, left, right)


class _CountLoops(NodeTransformer):
    """Every ``for`` iterates through ``counted``, and every ``~`` joins through ``joined``."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call("counted", [node.iter], node)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call("joined", node.nodes, node)


def _call(attribute: str, args: list[nodes.Expr], at: nodes.Node) -> nodes.Call:
    function = nodes.EnvironmentAttribute(attribute, lineno=at.lineno)
    return nodes.Call(function, args, [], None, None, lineno=at.lineno)


def _bounded(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter, counted and checked as a call is (``functools.wraps`` keeps the marks that
    tell Jinja to pass it the context)."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        return _checked_call(function, function, args, kwargs)

    return bounded


def _checked_call(function: Any, call: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    budget = _budget()
    budget.step()
    _check_arguments(budget, function, [*args, *kwargs.values()])
    result = call(*args, **kwargs)
    if isinstance(result, str):
        budget.build(len(result))
    else:
        budget.size(budget.measure(result))
    return result


def _check_arguments(budget: _Budget, function: Any, values: list[Any]) -> None:
    """No argument past the limit, no integer one (a width, a count) either, no format width
    past it, and what a ``join`` or ``replace`` would build."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            budget.size(abs(value), "a width or count")
        else:
            budget.size(budget.measure(value))
    target = getattr(function, "__wrapped__", function)
    # The method's name, or the filter's (do_join, or sync_do_join under its async variant).
    name = str(getattr(target, "__name__", "")).removeprefix("sync_").removeprefix("do_")
    owner = getattr(target, "__self__", None)
    texts = ([owner] if isinstance(owner, str) else []) + [v for v in values if isinstance(v, str)]
    if name in ("format", "format_map") and texts:
        _check_format_widths(budget, texts[0])
    elif name == "join":
        # ``separator.join(items)`` or ``items|join(separator)``; items may be a string.
        sequences = [v for v in values if isinstance(v, list | tuple | str)] + ["", ""]
        items, separator = (sequences[0], owner) if isinstance(owner, str) else sequences[:2]
        budget.size(budget.measure(items) + budget.measure(separator) * len(items))
    elif name == "replace" and len(texts) >= 3:
        budget.size(len(texts[0]) + (len(texts[0]) + 1) * len(texts[2]))


_DIGITS = re.compile(r"\d+")


def _check_format_widths(budget: _Budget, text: str) -> None:
    """A ``%``/``format`` string's widths and precisions: every number in it, summed."""
    numbers = _DIGITS.findall(text)
    if any(len(number) > 9 for number in numbers):
        raise TemplateLimit("it asked for a format width of over 9 digits")
    budget.size(sum(map(int, numbers)), "format widths")


def _check_binop(budget: _Budget, operator: str, left: Any, right: Any) -> None:
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
    if integers and operator in ("*", "**"):
        bits = abs(left).bit_length()
        bits = bits * right if operator == "**" and abs(left) > 1 else bits + right.bit_length()
        if bits > MAX_INT_BITS:
            raise TemplateLimit(f"it computed an integer of over {MAX_INT_BITS} bits")
    elif operator == "*":
        sized, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(count, int) and isinstance(sized, str | list | tuple):
            _new(budget, sized, budget.measure(sized) * max(count, 0))
    elif operator == "+" and all(isinstance(v, str | list | tuple) for v in (left, right)):
        _new(budget, left, budget.measure(left) + budget.measure(right))
    elif operator == "%" and isinstance(left, str):
        _check_format_widths(budget, left)
        values = right if isinstance(right, tuple) else (right,)
        _check_arguments(budget, None, list(values))
        budget.build(len(left) + sum(map(budget.measure, values)))


def _new(budget: _Budget, like: Any, size: int) -> None:
    """A new string counts against the total built; a new list holds what exists."""
    if isinstance(like, str):
        budget.build(size)
    else:
        budget.size(size)
