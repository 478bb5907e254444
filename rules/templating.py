"""Sandboxed Jinja templates for step fields: compile once at save, render per event.

One ``ImmutableSandboxedEnvironment`` with ``StrictUndefined`` serves every template.
``compile_value(value)`` walks dicts and lists; strings without ``{{``/``{%``/``{#`` stay
literals (fast path), a string that is exactly one ``{{ expr }}`` keeps the expression's
native type (number, bool, dict, list, None) and any other template renders to ``str``.
Mapping keys are never templates. ``a.b`` on a mapping prefers the key ``b`` over a
method of that name (``body.items`` is the payload's "items"). Every failure is a
``TemplateError``: syntax errors at compile; undefined names, sandbox violations, output
over ``MAX_OUTPUT_CHARS`` and arithmetic blow-ups (``'x' * 10**9``, ``10 ** 10**6``) at
render.

Context names the engine fills: ``body headers query event steps secrets state rule now``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError

from rules.errors import LimitExceeded, TemplateError
from rules.sandbox import ENV, MAX_OUTPUT_CHARS, printable

_NATIVE = re.compile(r"\s*\{\{(?P<expr>.*)\}\}\s*", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")


def _dotted(node: nodes.Node) -> str | None:
    """``body.data`` for a chain of names/attributes/constant subscripts, else None."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base, key = _dotted(node.node), node.arg.value
        if base is None:
            return None
        if isinstance(key, str) and key.isidentifier():
            return f"{base}.{key}"
        return f"{base}[{key!r}]"
    return None


def _explain_undefined(text: str, exc: UndefinedError, context: Mapping[str, Any] | None) -> str:
    """Reword Jinja's "'dict object' has no attribute 'x'" to name the object's path."""
    message = exc.message or str(exc)
    m = re.fullmatch(r"'.+?' has no attribute '(?P<attr>.+)'", message)
    if m is None:
        return message
    attr = m.group("attr")
    try:
        tree = ENV.parse(text)
    except TemplateSyntaxError:
        return message
    owners: list[str] = []
    key: Any
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            key, owner = node.attr, _dotted(node.node)
        elif isinstance(node, nodes.Getitem):
            key, owner = getattr(node.arg, "value", None), _dotted(node.node)
        else:
            continue
        if key == attr and owner is not None and owner not in owners:
            owners.append(owner)
    if not owners:
        return message
    # Several candidates ("a.id ~ b.id"): name the one that really lacks the attribute.
    for owner in owners:
        if context is not None and not _has(owner, attr, context):
            return f"'{owner}' has no attribute '{attr}'"
    return f"'{owners[0]}' has no attribute '{attr}'"


def _has(owner: str, attr: str, context: Mapping[str, Any]) -> bool:
    try:
        value = ENV.compile_expression(owner, False)(**context)
        return bool(isinstance(value, dict) and attr in value) or hasattr(value, attr)
    except Exception:  # the owner itself is missing: it certainly lacks ``attr``
        return False


def _fail(
    text: str, field: str | None, exc: Exception, context: Mapping[str, Any] | None = None
) -> TemplateError:
    where = f"{field}: " if field else ""
    if isinstance(exc, LimitExceeded):
        reason = f"template too large: {exc}"
    elif isinstance(exc, SecurityError):
        reason = f"template tried unsafe access: {exc}"
    elif isinstance(exc, UndefinedError):
        reason = _explain_undefined(text, exc, context)
    elif isinstance(exc, TemplateSyntaxError):
        reason = f"template syntax error: {exc.message} (line {exc.lineno})"
    elif isinstance(exc, JinjaTemplateError):
        reason = str(exc.message or exc)
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return TemplateError(f"{where}{reason} in {_clip(text)!r}", template=text, field=field)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _plain(value: Any) -> Any:
    """Turn a native template result into plain JSON-able data."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return str(value)  # drops Markup and other str subclasses
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | range):
        return [_plain(v) for v in value]
    return str(printable(value))


class CompiledValue:
    """A compiled field value; ``render(context)`` produces plain data or TemplateError."""

    def render(self, context: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    @property
    def is_literal(self) -> bool:
        """True when rendering needs no template at all."""
        return False


@dataclass(frozen=True)
class _Literal(CompiledValue):
    value: Any

    def render(self, context: Mapping[str, Any]) -> Any:
        # containers are copied so a caller mutating one rendering cannot change the next
        return copy.deepcopy(self.value) if isinstance(self.value, dict | list) else self.value

    @property
    def is_literal(self) -> bool:
        return True


@dataclass(frozen=True)
class _Text(CompiledValue):
    text: str
    field: str | None
    template: Any

    def render(self, context: Mapping[str, Any]) -> Any:
        out: list[str] = []
        size = 0
        try:
            chunks: Iterator[str] = self.template.generate(context)
            for chunk in chunks:
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise LimitExceeded(f"output longer than {MAX_OUTPUT_CHARS} characters")
                out.append(chunk)
        except Exception as exc:  # any failure inside a user template is the template's
            raise _fail(self.text, self.field, exc, context) from exc
        return "".join(out)


@dataclass(frozen=True)
class _Native(CompiledValue):
    text: str
    field: str | None
    expression: Any

    def render(self, context: Mapping[str, Any]) -> Any:
        try:
            value = self.expression(**context)
            if isinstance(value, Undefined):
                str(value)  # StrictUndefined raises the precise error here
            if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS:
                raise LimitExceeded(f"output longer than {MAX_OUTPUT_CHARS} characters")
            return _plain(value)
        except Exception as exc:  # any failure inside a user template is the template's
            raise _fail(self.text, self.field, exc, context) from exc


@dataclass(frozen=True)
class _Dict(CompiledValue):
    items: tuple[tuple[Any, CompiledValue], ...]

    def render(self, context: Mapping[str, Any]) -> Any:
        return {k: v.render(context) for k, v in self.items}


@dataclass(frozen=True)
class _List(CompiledValue):
    items: tuple[CompiledValue, ...]

    def render(self, context: Mapping[str, Any]) -> Any:
        return [v.render(context) for v in self.items]


def is_template(text: str) -> bool:
    """True when ``text`` holds Jinja markup (otherwise it is used as it is)."""
    return any(marker in text for marker in _MARKERS)


def _compile_string(text: str, field: str | None) -> CompiledValue:
    if not is_template(text):
        return _Literal(text)
    try:
        native, compiled = _compile_jinja(text)
    except Exception as exc:  # syntax errors, unknown filters, ...
        raise _fail(text, field, exc) from exc
    return _Native(text, field, compiled) if native else _Text(text, field, compiled)


@lru_cache(maxsize=4096)
def _compile_jinja(text: str) -> tuple[bool, Any]:
    """(is_native, compiled) for a template text; cached because save and load both compile."""
    m = _NATIVE.fullmatch(text)
    if m is not None and not is_template(m.group("expr")) and "}}" not in m.group("expr"):
        return True, ENV.compile_expression(m.group("expr"), False)
    return False, ENV.from_string(text)


def compile_value(value: Any, *, field: str | None = None) -> CompiledValue:
    """Compile every string inside ``value``; TemplateError names ``field`` (e.g. "json.text")."""
    if isinstance(value, str):
        return _compile_string(value, field)
    if isinstance(value, Mapping):
        items = tuple(
            (k, compile_value(v, field=f"{field}.{k}" if field else str(k)))
            for k, v in value.items()
        )
        if all(v.is_literal for _, v in items):
            return _Literal(dict(value))
        return _Dict(items)
    if isinstance(value, list | tuple):
        parts = tuple(
            compile_value(v, field=f"{field}[{i}]" if field else f"[{i}]")
            for i, v in enumerate(value)
        )
        if all(p.is_literal for p in parts):
            return _Literal(list(value))
        return _List(parts)
    return _Literal(value)


def check_template(text: str) -> None:
    """Raise TemplateError when ``text`` does not compile (used when rules are saved)."""
    _compile_string(text, None)


def render_template(text: str, context: Mapping[str, Any]) -> Any:
    """Compile and render ``text`` once (native type kept for a lone ``{{ expr }}``)."""
    return compile_value(text).render(context)
