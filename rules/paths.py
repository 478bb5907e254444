"""JSONPath compilation: simple paths become direct dict/list walks, the rest use jsonpath-ng.

``compile_path(expr)`` validates and compiles once (cached); ``CompiledPath.values(doc)``
returns every value the path selects, ``[]`` when nothing matches. Paths must start with
``$``. A path is *simple* when it is ``$`` followed only by ``.name``, ``[N]`` (a list
index, negative counts from the end) and ``['key']`` / ``["key"]`` segments (no backslash
inside). Simple paths never reach jsonpath-ng; they also expose ``segments`` so the
matcher can index on them. Everything else (wildcards, ``..``, filters, slices, escaped
quotes) is parsed by ``jsonpath_ng.ext.parse`` once at compile time, and selects exactly
what jsonpath-ng's own ``parse(expr).find`` selects (tests/unit/test_path_conformance.py).

A dotted ``.name`` is a run of word characters (Unicode letters, digits, ``_``), ``-`` and
``@`` that starts with a word character or with ``@`` before one: ``$.headers.x-test-mode``,
``$.body.@type``, ``$.body.where``, ``$.body.01``, ``$.body.ключ``. jsonpath-ng's lexer
reads some of these as something else (``where`` is its keyword, ``01`` the number 1,
``1-2`` two numbers, non-ASCII letters an error), so before parsing, every dotted name is
quoted (``$.body.where[*]`` is parsed as ``$.body."where"[*]``) by a small scanner that
skips quoted strings, back-quoted operators and numbers: filter literals such as
``'x.y'`` and ``1.5`` are never touched, and ``$[?2.2]`` stays invalid.

Regexes inside a path (``[?(@.k =~ "...")]`` filters and `` `sub(/re/, repl)` ``) would
run on Python's backtracking ``re`` and could stall a worker on one hostile value, so the
parsed tree is rewritten to match with RE2 (linear time, the same engine as the ``regex``
operator); a pattern RE2 cannot compile, or a non-string pattern, is refused at compile.
So is ``&`` between two paths (jsonpath-ng parses it but cannot evaluate it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jsonpath_ng import DatumInContext, JSONPath
from jsonpath_ng.ext import parse as _jsonpath_parse
from jsonpath_ng.ext.filter import Expression as _Expression
from jsonpath_ng.ext.string import Sub as _Sub
from jsonpath_ng.jsonpath import _Intersect

from rules.errors import PathError, RegexError
from rules.operators import compile_regex

Segment = str | int

# a dotted name (see the module docstring); jsonpath-ng's own IDs are the ASCII subset
_NAME = r"(?:@(?=\w))?\w[\w@-]*"
_SEGMENT = re.compile(
    rf"""\.(?P<name>{_NAME})            # .name
    | \[(?P<index>-?\d+)\]              # [3] or [-1]
    | \['(?P<sq>[^'\\]*)'\]             # ['a b']
    | \["(?P<dq>[^"\\]*)"\]             # ["a b"]
    """,
    re.VERBOSE,
)
_NAME_AT = re.compile(_NAME)
# how jsonpath-ng lexes a number (NUMBER, FLOAT): its "." is not a segment's
_NUMBER_AT = re.compile(r"-?\d+(?:\.\d+)?")
# a bare word jsonpath-ng lexes as one ID (or keyword): digits inside it are not a number
_WORD_AT = re.compile(r"@?[A-Za-z_][A-Za-z0-9_@-]*")


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
    if isinstance(node, _Intersect):  # parsed, but its find() raises NotImplementedError
        raise PathError(f"invalid JSONPath {expr!r}: '&' between two paths (an "
                        "intersection) is not supported; inside a filter use '&&'")
    return node


def _parse_jsonpath(expr: str) -> Any:
    return _harden(_parse_jsonpath_ng(expr), expr)


def _quote_names(expr: str) -> str:
    """``expr`` with every dotted name quoted (``.where`` -> ``."where"``), for
    jsonpath-ng's lexer. Quoted strings, back-quoted operators and numbers are copied as
    they are, so a ``.`` inside ``'x.y'`` or ``1.5`` never starts a name."""
    out: list[str] = []
    pos, end = 0, len(expr)
    while pos < end:
        char = expr[pos]
        if char in "'\"`":  # a string or `operator`, up to its closing quote
            stop = pos + 1
            while stop < end and expr[stop] != char:
                stop += 2 if expr[stop] == "\\" else 1
            stop = min(stop + 1, end)
        elif char == ".":
            stop = pos + 2 if expr.startswith("..", pos) else pos + 1
            name = _NAME_AT.match(expr, stop)
            if name is not None:
                out.append(f'{expr[pos:stop]}"{name.group()}"')
                pos = name.end()
                continue
        elif (number := _NUMBER_AT.match(expr, pos)) is not None:
            stop = number.end()
        elif (word := _WORD_AT.match(expr, pos)) is not None:
            stop = word.end()
        else:
            stop = pos + 1
        out.append(expr[pos:stop])
        pos = stop
    return "".join(out)


def _parse_jsonpath_ng(expr: str) -> Any:
    # jsonpath-ng refuses a path with its lexer's and parser's errors, and with whatever a
    # named operator's constructor raises (`split(x)`: DefintionInvalid, `sub(/[/, x)`:
    # re.error); a warning (its deprecations, when warnings are errors) is no refusal
    try:
        return _jsonpath_parse(_quote_names(expr))
    except Warning:
        raise
    except Exception as exc:  # noqa: BLE001 - see above
        # name the problem as jsonpath-ng sees the text the author wrote (its columns)
        reason: Exception = exc
        try:
            _jsonpath_parse(expr)
        except Warning:
            pass
        except Exception as original:  # noqa: BLE001
            reason = original
        raise PathError(f"invalid JSONPath {expr!r}: {reason}") from exc


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
