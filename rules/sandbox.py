"""The one Jinja sandbox every template renders in, with size guards and extra filters.

``ImmutableSandboxedEnvironment`` (no private attributes, no mutating methods) plus
``StrictUndefined``, no autoescaping (webhook payloads are not HTML), and guards that refuse
work *before* allocating it: ``*`` repetition and ``%``/``str.format``/``center``/``indent``
widths beyond ``MAX_OUTPUT_CHARS``, huge ``**`` results and ``range()`` beyond ``MAX_RANGE``.
``a.b`` on a mapping prefers the key ``b`` over a method of that name. Extra filters:
``json``/``tojson`` (plain ``json.dumps``), ``fromjson``, ``b64encode``, ``b64decode``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateRuntimeError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rules.errors import LimitExceeded

MAX_OUTPUT_CHARS = 1_000_000
"""Longest text a single template may produce (also bounds ``*`` and ``**`` results)."""

MAX_RANGE = 10_000
"""Largest ``range()`` a template may build."""


def _json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, indent=indent)


def _fromjson(text: str) -> Any:
    return json.loads(text)


def _b64encode(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str) -> str:
    return base64.b64decode(value).decode("utf-8", errors="replace")


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


_WIDE = re.compile(r"\d{7,}")


def _guard_format(fmt: Any) -> None:
    """Refuse format strings whose widths alone would exceed the output cap."""
    if isinstance(fmt, str) and _WIDE.search(fmt):
        raise LimitExceeded("format width too large")


def _guard_width(width: Any) -> None:
    if isinstance(width, int) and width > MAX_OUTPUT_CHARS:
        raise LimitExceeded("width too large")


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``a ~ b`` joined by ``environment.concat_join`` (no
    autoescaping here, so ``str_join`` was the only path): it checks what it joins."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox plus size guards checked *before* allocating: ``*``, ``**``, ``%``,
    ``str.format`` and the ``center``/``indent``/``format`` filters."""

    intercepted_binops = frozenset({"*", "**", "%"})
    code_generator_class = _CodeGenerator

    @staticmethod
    def concat_join(parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ …``: every part printable, the result within the output cap (a
        macro doubling a string by ``~`` stops at the cap, not at the worker's memory)."""
        texts = [str(printable(part)) for part in parts]
        if sum(map(len, texts)) > MAX_OUTPUT_CHARS:
            raise LimitExceeded(f"~ result longer than {MAX_OUTPUT_CHARS} characters")
        return "".join(texts)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Event data is JSON: ``body.items`` must be the "items" key, not ``dict.items``.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # str.replace / str.join / padding build their result in one C call that no
        # timer can interrupt: refuse results past the output cap before making them.
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(__obj, "__name__", ""), args)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _guard_format(getattr(value, "__self__", None))
        return wrapped

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            _guard_format(left)
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                size = _sized(seq)
                if size is not None and isinstance(times, int) and size * times > MAX_OUTPUT_CHARS:
                    raise LimitExceeded("repetition result too large")
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * max(abs(left).bit_length(), 1) > 64_000:
                raise LimitExceeded("power result too large")
        return super().call_binop(context, operator, left, right)


def _joined_size(items: Any, sep: str) -> int | None:
    if not isinstance(items, list | tuple | range | str):
        return None
    n = len(items)
    if isinstance(items, range):
        return n * 6 + len(sep) * max(n - 1, 0)  # digits of ints up to MAX_RANGE
    return sum(len(str(x)) for x in items) + len(sep) * max(n - 1, 0)


def _check_str_method(s: str, name: str, args: tuple[Any, ...]) -> None:
    size: int | None = None
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        old, new = args[0], str(args[1])
        count = s.count(old) if old else len(s) + 1
        size = len(s) + count * max(0, len(new) - len(old))
    elif name == "join" and args:
        size = _joined_size(args[0], s)
    elif name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        size = args[0]
    if size is not None and size > MAX_OUTPUT_CHARS:
        raise LimitExceeded(f"str.{name} result too large")


@pass_eval_context
def _replace_filter(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
    _check_str_method(str(value), "replace", (str(old), str(new)))
    return ENV_FILTERS_REPLACE(eval_ctx, value, old, new, count)


@pass_eval_context
def _join_filter(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
    items = value if isinstance(value, list | tuple | str | range) else list(value)
    if attribute is None:
        size = _joined_size(items, str(d))
        if size is not None and size > MAX_OUTPUT_CHARS:
            raise LimitExceeded("join result too large")
    return ENV_FILTERS_JOIN(eval_ctx, items, d, attribute)


_PLAIN = (str, int, float, bool, type(None), range, Undefined)  # Undefined: str() explains


def printable(value: Any, depth: int = 0) -> Any:
    """``value`` unchanged when printing it shows data; a template error when it would
    print an engine object (a function, a class, a ``<… object at 0x…>`` repr: memory
    addresses and internals, nothing a rule author can use)."""
    if isinstance(value, _PLAIN) or depth > 64:
        return value
    if isinstance(value, dict | list | tuple):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for _, item in items:
            printable(item, depth + 1)
        return value
    if callable(value) or type(value).__repr__ is object.__repr__:
        name = getattr(value, "__name__", None) or type(value).__name__
        raise TemplateRuntimeError(
            f"cannot print {name!r}: it is not data (a function or engine object); "
            "print one of its values instead, e.g. state('key') or body.field")
    return value


def _string_filter(value: Any) -> str:
    return ENV_FILTERS_STRING(printable(value))


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise LimitExceeded(f"range() longer than {MAX_RANGE} items")
    return rng


def _guarded(func: Any, check_width: Any) -> Any:
    def guarded(value: Any, *args: Any, **kwargs: Any) -> Any:
        _guard_format(value)
        for arg in (*args, *kwargs.values()):
            if check_width is not None:
                check_width(arg)
        return func(value, *args, **kwargs)

    return guarded


ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                   finalize=printable)
ENV.filters.update(
    json=_json, tojson=_json, fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode
)
for _name, _check in (("center", _guard_width), ("indent", _guard_width), ("format", None)):
    ENV.filters[_name] = _guarded(ENV.filters[_name], _check)
ENV_FILTERS_REPLACE = ENV.filters["replace"]
ENV_FILTERS_JOIN = ENV.filters["join"]
ENV.filters["replace"] = _replace_filter
ENV.filters["join"] = _join_filter
ENV_FILTERS_STRING = ENV.filters["string"]
ENV.filters["string"] = _string_filter
ENV.globals["range"] = _safe_range
ENV.globals.pop("lipsum", None)
