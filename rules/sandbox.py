"""The one Jinja sandbox every template renders in, with size guards and extra filters.

``ImmutableSandboxedEnvironment`` (no private attributes, no mutating methods) plus
``StrictUndefined``, no autoescaping (webhook payloads are not HTML), and guards that refuse
work *before* allocating it: ``*`` repetition, ``~`` concatenation, ``%``/``str.format``
widths and precisions (``*`` and nested ``{w}`` fields read from the arguments),
``center``/``indent``/``expandtabs``/``zfill`` results beyond ``MAX_OUTPUT_CHARS``,
``tojson`` indents beyond ``MAX_JSON_INDENT``, huge ``**`` results, ``batch`` fills and
``range()`` beyond ``MAX_RANGE``. Functions and engine objects never print.
``a.b`` on a mapping prefers the key ``b`` over a method of that name. Extra filters:
``json``/``tojson`` (plain ``json.dumps``), ``fromjson``, ``b64encode``, ``b64decode``.
``secrets`` is opaque (``rules.secret_refs``): its names give references that no
filter, method or subscript may look into.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import string
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rules.errors import LimitExceeded
from rules.secret_refs import (
    DEFERRED,
    OPEN,
    SINK_HELP,
    SecretNamespace,
    SecretRefused,
    holds_ref,
    labels,
    owner_of,
)

MAX_OUTPUT_CHARS = 1_000_000
"""Longest text a single template may produce (also bounds ``*`` and ``**`` results)."""

MAX_RANGE = 10_000
"""Largest ``range()`` a template may build."""


MAX_JSON_INDENT = 32
"""Widest ``tojson(indent)``: every nesting level repeats the indent on every line."""


def _json(value: Any, indent: int | None = None) -> str:
    if isinstance(indent, int) and not 0 <= indent <= MAX_JSON_INDENT:
        raise LimitExceeded(f"tojson indent must be 0 to {MAX_JSON_INDENT}, got {indent}")
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


_PERCENT = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?[hlL]?(?P<conv>.)")
_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d+)?[,_]?(?:\.(?P<prec>\d+))?")
_FORMATTER = string.Formatter()


def _percent_size(fmt: str, values: Any) -> int:
    """A lower bound of ``fmt % values``'s length from its widths and precisions, with
    ``*`` read from the values it consumes (``'%*d' % (10**8, 1)`` is 10**8 wide)."""
    items = list(values) if isinstance(values, tuple) else [values]
    size, pos = len(fmt), 0

    def take(raw: str | None) -> int:
        nonlocal pos
        if raw != "*":
            return int(raw) if raw else 0
        value = items[pos] if pos < len(items) else 0
        pos += 1
        return value if isinstance(value, int) else 0

    for m in _PERCENT.finditer(fmt):
        if m["conv"] == "%":
            continue
        size += max(take(m["width"]), take(m["prec"]))
        if m["key"] is None:
            pos += 1
    return size


def _format_size(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """A lower bound of ``fmt.format(*args, **kwargs)``'s length from its format specs,
    nested fields (``'{:{w}}'``) resolved from the arguments."""
    size, auto = len(fmt), 0

    def lookup(name: str) -> Any:
        nonlocal auto
        if name == "":
            name, auto = str(auto), auto + 1
        first = re.split(r"[.\[]", name, maxsplit=1)[0]
        if first.isdigit():
            return args[int(first)] if int(first) < len(args) else ""
        return kwargs.get(first, "")

    try:
        for _, field, spec, _ in _FORMATTER.parse(fmt):
            if field is None:
                continue
            if field == "":
                auto += 1
            if spec and "{" in spec:
                spec = "".join(text + (str(lookup(inner)) if inner is not None else "")
                               for text, inner, _, _ in _FORMATTER.parse(spec))
            m = _SPEC.match(spec or "")
            if m:
                size += max(int(m["width"] or 0), int(m["prec"] or 0))
    except (ValueError, IndexError):
        return size  # a malformed format: str.format raises its own clear error
    return size


def _guard_percent(fmt: Any, values: Any) -> None:
    if isinstance(fmt, str) and _percent_size(fmt, values) > MAX_OUTPUT_CHARS:
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


    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        # Jinja writes ``a[1:2]`` as plain Python, past ``environment.getitem``: route
        # slices through ``environment.slice_of`` so they get the same checks.
        if not isinstance(node.arg, nodes.Slice):
            return super().visit_Getitem(node, frame)
        self.write("environment.slice_of(")
        self.visit(node.node, frame)
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            self.write(", ")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write(")")
        return None


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
        if isinstance(obj, SecretNamespace):
            return self._secret(obj, attribute)
        _refuse_inside(obj, f".{attribute}")
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, SecretNamespace):
            if not isinstance(argument, str):
                raise SecurityError("secrets[...] takes a secret's name")
            return self._secret(obj, argument)
        _refuse_inside(obj, "[...]")
        return super().getitem(obj, argument)

    @staticmethod
    def slice_of(obj: Any, start: Any, stop: Any, step: Any) -> Any:
        _refuse_inside(obj, "slicing")
        return obj[start:stop:step]

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # ``secrets|attr('x')`` and the like: the namespace has no attributes of its own.
        return not isinstance(obj, SecretNamespace) and super().is_safe_attribute(
            obj, attr, value)

    def _secret(self, namespace: SecretNamespace, name: str) -> Any:
        try:
            return namespace.lookup(name)
        except KeyError:
            return self.undefined(f"secret {name!r} is not set (hookwise secrets set {name})",
                                  obj=namespace, name=name)
        except SecretRefused as exc:
            raise SecurityError(str(exc)) from None

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # str.replace / str.join / padding build their result in one C call that no
        # timer can interrupt: refuse results past the output cap before making them.
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _refuse_inside(owner, f".{getattr(__obj, '__name__', '')}()")
            _check_str_method(owner, getattr(__obj, "__name__", ""), args)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt, is_map = value.__self__, value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> Any:
            named = args[0] if is_map and args and isinstance(args[0], dict) else kwargs
            if _format_size(fmt, () if named is not kwargs else args, named) > MAX_OUTPUT_CHARS:
                raise LimitExceeded("format width too large")
            return wrapped(*args, **kwargs)

        return checked

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            _guard_percent(left, right)
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                size = _sized(seq)
                if size is not None and isinstance(times, int) and size * times > MAX_OUTPUT_CHARS:
                    raise LimitExceeded("repetition result too large")
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * max(abs(left).bit_length(), 1) > 64_000:
                raise LimitExceeded("power result too large")
        return super().call_binop(context, operator, left, right)


def _refuse_inside(value: Any, what: str) -> None:
    """A secret reference cannot be looked into: refuse ``what`` on a string holding one."""
    if isinstance(value, str) and OPEN in value:
        raise SecurityError(f"{what} cannot be used on {_named(value)}: {SINK_HELP}")


def _named(value: str) -> str:
    found = [f"secrets.{label[7:]}" if label.startswith("secret:") else label
             for label in labels(value)]
    return ", ".join(dict.fromkeys(found)) or "a secret"


def _secret_aware(name: str, fn: Any) -> Any:
    """``fn`` (a filter) refusing a value that holds a secret reference — except the
    DEFERRED filters, which wrap the reference (applied to the value when resolved),
    and ``string``/``default``, which leave it as it is."""
    offset = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value = args[offset] if len(args) > offset else None
        if isinstance(value, SecretNamespace):
            raise SecurityError(f"the {name} filter cannot be used on secrets; "
                                "name one: secrets.NAME")
        if holds_ref(value):
            if name in DEFERRED and not kwargs and len(args) == offset + 1:
                refs = owner_of(value)
                if refs is not None:
                    return refs.derive(name, value)
            if name in ("string", "default", "d") and isinstance(value, str):
                return value
            if isinstance(value, str) or name not in _PASSING:
                shown = _named(value) if isinstance(value, str) else "a secret"
                raise SecurityError(f"the {name} filter cannot be used on {shown}: {SINK_HELP}")
        return fn(*args, **kwargs)

    return guarded


_PASSING = frozenset({"join", "first", "last", "default", "d", "list", "map", "select",
                      "reject", "selectattr", "rejectattr", "dictsort", "items"})
"""Filters that may take a list or mapping holding references: they move whole values
around (the strings inside still cannot be looked into)."""


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
    elif name == "expandtabs":
        tabsize = args[0] if args and isinstance(args[0], int) else 8
        size = len(s) + s.count("\t") * max(tabsize, 0)
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


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> Any:
    _guard_percent(value, args if args else kwargs)
    return ENV_FILTERS_FORMAT(value, *args, **kwargs)


def _center_filter(value: Any, width: Any = 80) -> Any:
    _guard_width(width)
    return ENV_FILTERS_CENTER(value, width)


def _indent_filter(value: Any, width: Any = 4, first: bool = False, blank: bool = False) -> Any:
    text = str(value)
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    if len(text) + (text.count("\n") + 1) * pad > MAX_OUTPUT_CHARS:
        raise LimitExceeded("indent result too large")
    return ENV_FILTERS_INDENT(value, width, first, blank)


def _batch_filter(value: Any, linecount: Any, fill_with: Any = None) -> Any:
    if fill_with is not None and isinstance(linecount, int) and linecount > MAX_RANGE:
        raise LimitExceeded(f"batch() filling rows of more than {MAX_RANGE} items")
    return ENV_FILTERS_BATCH(value, linecount, fill_with)


ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                   finalize=printable)
ENV.filters.update(
    json=_json, tojson=_json, fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode
)
ENV_FILTERS_FORMAT = ENV.filters["format"]
ENV_FILTERS_CENTER = ENV.filters["center"]
ENV_FILTERS_INDENT = ENV.filters["indent"]
ENV_FILTERS_BATCH = ENV.filters["batch"]
ENV.filters.update(format=_format_filter, center=_center_filter, indent=_indent_filter,
                   batch=_batch_filter)
ENV_FILTERS_REPLACE = ENV.filters["replace"]
ENV_FILTERS_JOIN = ENV.filters["join"]
ENV.filters["replace"] = _replace_filter
ENV.filters["join"] = _join_filter
ENV_FILTERS_STRING = ENV.filters["string"]
ENV.filters["string"] = _string_filter
DEFERRED_FILTERS = {name: ENV.filters[name] for name in DEFERRED}
"""What a DEFERRED filter does to a secret's value once it is resolved."""
ENV.filters.update({name: _secret_aware(name, fn) for name, fn in ENV.filters.items()})
ENV.globals["range"] = _safe_range
ENV.globals.pop("lipsum", None)
