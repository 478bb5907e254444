"""The condition operators: a table of small typed functions keyed by name.

Each ``Operator.apply(seen, expected, ignore_case=..., match=...)`` decides a predicate from
``seen`` (every value the path selected, possibly none) and ``expected`` (the rule's
``value``, or one value at its ``value_path``; ``apply_many`` takes every value a
``value_path`` selected). The user-facing tables are in docs/conditions.md. Semantics:

- **Per-value tests** (``eq gt ge lt le in contains startswith endswith regex``) are applied
  to each selected value; ``match: any`` (default) needs at least one to pass, ``match:
  all`` needs every one to pass *and* at least one value. Nothing selected is False.
- **Negative operators** (``ne nin ncontains nempty``) are true when their positive twin
  passes for **no** selected value: ``{op: ne, value: x}`` over ``$.tags[*]`` means "no tag
  equals x", and a missing path is ``ne`` anything. ``match`` does not change them:
  ``match: all`` reads "every value is not x", which is the same thing (before, it meant
  "not every value equals x"; write that as ``not: {op: eq, match: all}``). ``nexists`` is
  "nothing selected".
- **Numbers** (``as_number``): ints and floats, and strings that spell a finite JSON number
  in ASCII (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?``: no ``+``, no spaces, no
  leading zeros, no other scripts' digits). Bools are never numbers; NaN, infinities and
  strings that overflow (``"1e400"``) are not numbers. When both sides are numbers,
  ``eq gt ge lt le`` compare numerically (``"10" eq "10.0"``, ``"1500" gt 1000``).
  Two strings of which one is not a number compare as text (``gt`` etc. lexicographically,
  so ISO dates work); any other pairing is False, never an error.
- **eq**: numerically when both sides are numbers; bools only equal bools (``true`` is not
  ``1``); otherwise Python equality.
- **ignore_case** folds strings with ``fold`` (Unicode caseless matching: NFD, ``casefold``,
  and dotted capital I folds to ``i``): the strings of both sides, the string members of
  lists and the string keys of mappings. ``regex`` uses RE2's case-insensitive flag
  instead (simple case folding: ``Σ`` matches ``ς``, ``ß`` does not match ``SS``).
- **in**: the value is a list; true when the seen value ``eq`` one of its members.
- **contains**: substring of a string, ``eq`` a member of a list, or a key of a mapping.
- **startswith / endswith / regex**: string tests; numbers are turned into strings first.
  ``regex`` searches with a cached RE2 pattern (linear time; see ``compile_regex``).
- **exists**: the path selected something (even ``null``). **empty**: nothing selected, or a
  selected value is ``None``, ``""``, ``[]`` or ``{}`` (``match: all``: every one is).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import re2

from rules.errors import RegexError

MatchMode = Literal["any", "all"]
ValueTest = Callable[[Any, Any], bool]

_NUMERIC = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<real>(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)")
"""A JSON number, ASCII digits only (``[0-9]`` is ASCII in Python's ``re``)."""

_MAX_INT_DIGITS = 4000
"""Longer integer strings are read as floats (Python refuses ``int()`` past 4300 digits)."""


def as_number(value: Any) -> int | float | None:
    """``value`` as a finite number when it is one (or a string spelling a JSON number in
    ASCII digits); bools, NaN, infinities and overflowing strings are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        found = _NUMERIC.fullmatch(value)
        if found is None:
            return None
        if not found.group("real") and len(value) <= _MAX_INT_DIGITS:
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else None
    return None


@lru_cache(maxsize=1024)
def compile_regex(pattern: str, ignore_case: bool = False) -> Any:
    """Compile ``pattern`` once with RE2, whose matching time is linear in the input, so
    a hostile payload or pattern cannot stall a worker (no catastrophic backtracking)."""
    opts = re2.Options()
    opts.case_sensitive = not ignore_case
    opts.log_errors = False
    try:
        return re2.compile(pattern, opts)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise RegexError(f"{reason} (patterns use RE2 syntax: no back-references or "
                         "look-around)") from None


def fold(text: str) -> str:
    """``text`` case-folded for caseless comparison: canonical decomposition, Unicode full
    case folding (``straße`` → ``strasse``, ``ς`` → ``σ``), and ``İ`` folds to plain ``i``
    (its casefold is ``i`` + COMBINING DOT ABOVE, which no lowercase text carries)."""
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())
    return unicodedata.normalize("NFC", folded.replace("i\u0307", "i"))


def fold_case(value: Any) -> Any:
    """Fold a string, the strings of a list, or the string keys of a mapping (one level);
    leave anything else as it is."""
    if isinstance(value, str):
        return fold(value)
    if isinstance(value, list):
        return [fold(v) if isinstance(v, str) else v for v in value]
    if isinstance(value, dict):
        return {fold(k) if isinstance(k, str) else k: v for k, v in value.items()}
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _eq(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    a, b = as_number(actual), as_number(expected)
    if a is not None and b is not None:
        return a == b
    if isinstance(actual, int | float) or isinstance(expected, int | float):
        return False  # a number never equals a non-number (nor NaN/infinity anything)
    return bool(actual == expected)


def _ordered(cmp: Callable[[Any, Any], bool]) -> ValueTest:
    def test(actual: Any, expected: Any) -> bool:
        a, b = as_number(actual), as_number(expected)
        if a is not None and b is not None:
            return cmp(a, b)
        if isinstance(actual, str) and isinstance(expected, str):
            return cmp(actual, expected)
        return False

    return test


def _in(actual: Any, expected: Any) -> bool:
    members = expected if isinstance(expected, list) else [expected]
    return any(_eq(actual, m) for m in members)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        needle = _text(expected)
        return needle is not None and needle in actual
    if isinstance(actual, list):
        return any(_eq(m, expected) for m in actual)
    if isinstance(actual, dict):
        return isinstance(expected, str) and expected in actual
    return False


def _startswith(actual: Any, expected: Any) -> bool:
    a, b = _text(actual), _text(expected)
    return a is not None and b is not None and a.startswith(b)


def _endswith(actual: Any, expected: Any) -> bool:
    a, b = _text(actual), _text(expected)
    return a is not None and b is not None and a.endswith(b)


def _is_empty(actual: Any) -> bool:
    return actual is None or (isinstance(actual, str | list | dict) and len(actual) == 0)


def _exists(seen: list[Any], match: MatchMode) -> bool:
    return bool(seen)


def _empty(seen: list[Any], match: MatchMode) -> bool:
    if not seen:
        return True
    quantifier = all if match == "all" else any
    return quantifier(_is_empty(v) for v in seen)


def _regex_pattern(expected: Any, ignore_case: bool) -> Any:
    return compile_regex(str(expected), ignore_case)


def _regex(actual: Any, pattern: Any) -> bool:
    text = _text(actual)
    return text is not None and pattern.search(text) is not None


@dataclass(frozen=True)
class Operator:
    """One operator: a per-value ``test`` or a ``whole``-selection rule, plus its options.

    ``negates`` names the positive twin whose result this operator inverts; ``prepare``
    turns the expected value into what ``test`` takes (default: lowercased under
    ``ignore_case``); ``needs_value`` says whether a predicate with this op must carry
    ``value`` or ``value_path``.
    """

    name: str
    test: ValueTest | None = None
    whole: Callable[[list[Any], MatchMode], bool] | None = None
    prepare: Callable[[Any, bool], Any] | None = None
    negates: str | None = None
    needs_value: bool = True

    def apply(
        self,
        seen: list[Any],
        expected: Any = None,
        *,
        ignore_case: bool = False,
        match: MatchMode = "any",
    ) -> bool:
        """Decide the predicate for the selected values ``seen`` (see the module docstring)."""
        if self.negates is not None:  # no selected value passes the twin, whatever `match`
            twin = OPERATORS[self.negates]
            return not twin.apply(seen, expected, ignore_case=ignore_case, match="any")
        if self.whole is not None:
            return self.whole(seen, match)
        if not seen:
            return False
        if self.prepare is not None:
            expected = self.prepare(expected, ignore_case)
        elif ignore_case:
            expected = fold_case(expected)
            seen = [fold_case(v) for v in seen]
        test = self.test
        assert test is not None, f"operator {self.name} has neither test nor whole"
        if match == "all":
            return all(test(v, expected) for v in seen)
        return any(test(v, expected) for v in seen)


    def apply_many(
        self,
        seen: list[Any],
        found: list[Any],
        *,
        ignore_case: bool = False,
        match: MatchMode = "any",
    ) -> bool:
        """Decide against every value a ``value_path`` selected (``found``, not empty).

        ``in``/``nin``: the values found are the list (one value that is a list is used as
        it is). Other ops: ``match`` counts on both sides — ``any``: some (seen, found)
        pair passes; ``all``: every pair passes; a negative op: no pair passes its twin."""
        if self.name in ("in", "nin") or len(found) == 1:
            expected = found[0] if len(found) == 1 else found
            return self.apply(seen, expected, ignore_case=ignore_case, match=match)
        each = (self.apply(seen, v, ignore_case=ignore_case, match=match) for v in found)
        if self.negates is not None or match == "all":
            return all(each)
        return any(each)


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("eq", _eq),
        Operator("ne", negates="eq"),
        Operator("gt", _ordered(lambda a, b: a > b)),
        Operator("ge", _ordered(lambda a, b: a >= b)),
        Operator("lt", _ordered(lambda a, b: a < b)),
        Operator("le", _ordered(lambda a, b: a <= b)),
        Operator("in", _in),
        Operator("nin", negates="in"),
        Operator("contains", _contains),
        Operator("ncontains", negates="contains"),
        Operator("startswith", _startswith),
        Operator("endswith", _endswith),
        Operator("regex", _regex, prepare=_regex_pattern),
        Operator("exists", whole=_exists, needs_value=False),
        Operator("nexists", negates="exists", needs_value=False),
        Operator("empty", whole=_empty, needs_value=False),
        Operator("nempty", negates="empty", needs_value=False),
    )
}
