"""JSONPath compilation: simple paths become direct dict/list walks, the rest use jsonpath-ng.

``compile_path(expr)`` validates and compiles once (cached); ``CompiledPath.values(doc)``
returns every value the path selects, ``[]`` when nothing matches. Paths must start with
``$``. A path is *simple* when it is ``$`` followed only by ``.name`` (letters, digits, ``_``
and ``-``, so ``$.headers.x-test-mode`` works), ``[N]`` (a list index, negative counts from
the end) and ``['key']`` / ``["key"]`` segments. Simple paths never reach jsonpath-ng; they
also expose ``segments`` so the matcher can index on them. Everything else (wildcards,
``..``, filters, slices) is parsed by ``jsonpath_ng.ext.parse`` once at compile time.

Regexes inside a path (``[?(@.k =~ "...")]`` filters and `` `sub(/re/, repl)` ``) would
run on Python's backtracking ``re`` and could stall a worker on one hostile value, so the
parsed tree is rewritten to match with RE2 (linear time, the same engine as the ``regex``
operator); a pattern RE2 cannot compile, or a non-string pattern, is refused at compile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jsonpath_ng import DatumInContext, JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as _jsonpath_parse
from jsonpath_ng.ext.filter import Expression as _Expression
from jsonpath_ng.ext.string import Sub as _Sub

from rules.errors import PathError, RegexError
from rules.operators import compile_regex

Segment = str | int

_NAME = r"[A-Za-z0-9_][\w-]*"
_SEGMENT = re.compile(
    rf"""\.(?P<name>{_NAME})            # .name
    | \[(?P<index>-?\d+)\]              # [3] or [-1]
    | \['(?P<sq>[^'\\]*)'\]             # ['a b']
    | \["(?P<dq>[^"\\]*)"\]             # ["a b"]
    """,
    re.VERBOSE,
)
_DOTTED_NAME = re.compile(rf"\.({_NAME})")


def _parse_simple(expr: str) -> tuple[Segment, ...] | None:
    """Split a simple path into segments, or return None when it needs jsonpath-ng."""
    pos, segments = 1, []
    while pos < len(expr):
        m = _SEGMENT.match(expr, pos)
        if m is None:
            return None
        if m.group("name") is not None:
            segments.append(m.group("name"))
        elif m.group("index") is not None:
            segments.append(int(m.group("index")))
        else:
            segments.append(m.group("sq") if m.group("sq") is not None else m.group("dq"))
        pos = m.end()
    return tuple(segments)


def _walk(doc: Any, segments: tuple[Segment, ...]) -> list[Any]:
    cur = doc
    for seg in segments:
        if isinstance(seg, str):
            if not isinstance(cur, dict) or seg not in cur:
                return []
            cur = cur[seg]
        else:
            if not isinstance(cur, list) or not -len(cur) <= seg < len(cur):
                return []
            cur = cur[seg]
    return [cur]


@dataclass(frozen=True)
class CompiledPath:
    """A validated JSONPath; ``values(doc)`` lists what it selects (``[]`` when nothing)."""

    expr: str
    segments: tuple[Segment, ...] | None = None
    _parsed: Any = field(default=None, repr=False, compare=False)

    @property
    def is_simple(self) -> bool:
        """True when the path is a direct walk (``segments`` is then a tuple)."""
        return self.segments is not None

    def values(self, doc: Any) -> list[Any]:
        """Every value the path selects in ``doc``, in document order."""
        if self.segments is not None:
            return _walk(doc, self.segments)
        return [m.value for m in self._parsed.find(doc)]

    def first(self, doc: Any, default: Any = None) -> Any:
        """The first selected value, or ``default`` when the path selects nothing."""
        found = self.values(doc)
        return found[0] if found else default


class _RE2Expression(_Expression):  # type: ignore[misc]
    """A ``@.x =~ "pattern"`` filter test matched with RE2 instead of ``re.search``: same
    result (a string value the pattern is found in), in time linear in the value."""

    def __init__(self, target: Any, pattern: str, regex: Any) -> None:
        super().__init__(target, "=~", pattern)
        self._regex = regex

    def find(self, datum: Any) -> list[Any]:
        found = self.target.find(DatumInContext.wrap(datum))
        return [d for d in found if isinstance(d.value, str) and self._regex.search(d.value)]


def _re2(expr: str, pattern: Any, where: str) -> Any:
    if not isinstance(pattern, str):
        raise PathError(f"invalid JSONPath {expr!r}: the pattern of {where} must be a "
                        f"quoted string, not {pattern!r}")
    try:
        return compile_regex(pattern)
    except RegexError as exc:
        raise PathError(f"invalid JSONPath {expr!r}: regex {pattern!r} in {where} is not "
                        f"allowed: {exc}") from None


def _harden(node: Any, expr: str) -> Any:
    """Rewrite every regex in the parsed tree ``node`` to run on RE2 (in place where it
    can, returning the node to use)."""
    for name, child in list(vars(node).items()):
        if isinstance(child, JSONPath):
            setattr(node, name, _harden(child, expr))
        elif isinstance(child, list):
            setattr(node, name, [_harden(c, expr) if isinstance(c, JSONPath) else c
                                 for c in child])
    if isinstance(node, _Expression) and node.op == "=~":
        return _RE2Expression(node.target, node.value,
                              _re2(expr, node.value, "a '=~' filter"))
    if isinstance(node, _Sub):
        node.regex = _re2(expr, node.expr, "`sub()`")
    return node


def _parse_jsonpath(expr: str) -> Any:
    return _harden(_parse_jsonpath_ng(expr), expr)


def _parse_jsonpath_ng(expr: str) -> Any:
    try:
        return _jsonpath_parse(expr)
    except (JsonPathLexerError, JsonPathParserError, ValueError, TypeError) as exc:
        # jsonpath-ng mis-lexes some field names (``where``, ``a.1-2``); retry quoted.
        quoted = _DOTTED_NAME.sub(lambda m: f'."{m.group(1)}"', expr)
        if quoted != expr:
            try:
                return _jsonpath_parse(quoted)
            except (JsonPathLexerError, JsonPathParserError, ValueError, TypeError):
                pass  # report the original error below
        raise PathError(f"invalid JSONPath {expr!r}: {exc}") from exc


@lru_cache(maxsize=4096)
def compile_path(expr: str) -> CompiledPath:
    """Compile ``expr`` once; raise PathError naming the expression and the reason."""
    if not isinstance(expr, str):
        raise PathError(f"invalid JSONPath {expr!r}: must be a string")
    if not expr.startswith("$"):
        raise PathError(f"invalid JSONPath {expr!r}: must start with '$' (e.g. $.body.type)")
    segments = _parse_simple(expr)
    if segments is not None:
        return CompiledPath(expr=expr, segments=segments)
    return CompiledPath(expr=expr, _parsed=_parse_jsonpath(expr))
