"""Condition models: a predicate, or an ``all``/``any``/``not`` group, nested freely.

Which model a mapping is decided by its keys (``all``, ``any``, ``not``, else ``path``/``op``),
so errors point into the right model instead of listing every alternative.
Re-exported by ``rules.schema``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from rules.errors import RegexError
from rules.model_base import JsonPath, StrictModel
from rules.operators import OPERATORS, compile_regex
from rules.step_checks import check_size

OpName = Literal[
    "eq", "ne", "gt", "ge", "lt", "le", "in", "nin", "contains", "ncontains",
    "startswith", "endswith", "regex", "exists", "nexists", "empty", "nempty",
]  # fmt: skip


class Predicate(StrictModel):
    """One test: the values at ``path`` compared by ``op`` with ``value`` (or ``value_path``).

    Ops ``exists nexists empty nempty`` take no value; every other op needs a non-null
    ``value`` or a ``value_path`` (test for null with ``empty``). ``in``/``nin`` need a list;
    ``regex`` a pattern that compiles. A ``value`` that can never satisfy its op is refused
    with the likely fix (``_never_matches``: ``eq`` a list, ``startswith`` a list, ``gt``
    a boolean, ``regex`` a number, NaN/infinity; see docs/conditions.md).
    """

    path: JsonPath
    op: OpName
    value: Any = None
    value_path: JsonPath | None = None
    ignore_case: bool = False
    match: Literal["any", "all"] = "any"

    @field_validator("value")
    @classmethod
    def _value_fits_op(cls, value: Any, info: ValidationInfo) -> Any:
        check_size(value, "this condition value")
        op, path = info.data.get("op"), info.data.get("path", "the path")
        if value is None or op is None:
            return value
        problem = _never_matches(op, path, value)
        if problem is not None and (_CHECK_AT_SAVE.get() or problem.startswith(_ALWAYS)):
            raise ValueError(problem)
        if op == "regex":
            try:
                compile_regex(value)
            except RegexError as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _value_present(self) -> Predicate:
        needs_value = OPERATORS[self.op].needs_value
        has_value = self.value is not None or self.value_path is not None
        if self.value is not None and self.value_path is not None:
            raise ValueError("give `value` or `value_path`, not both")
        if needs_value and not has_value:
            raise ValueError(f"op '{self.op}' needs `value` (or `value_path`)")
        if not needs_value and has_value:
            raise ValueError(
                f"`{self.path} {self.op}` takes no `value` (it tests {_NO_VALUE[self.op]}); "
                "remove `value` (or `value_path`), or use `eq` to compare with a value")
        return self


_CHECK_AT_SAVE: ContextVar[bool] = ContextVar("check_at_save", default=True)
_ALWAYS = ("op 'in' needs", "op 'nin' needs", "op 'regex' needs")
"""Refused before the never-matches checks existed: stored rules never hold these."""


@contextmanager
def stored_conditions() -> Iterator[None]:
    """Read rules saved before a check refused them: a stored ``eq [a, b]`` or ``gt true``
    loads (and behaves as it always did) instead of failing the whole rule set. Saving
    (``apply``, the API, the builder) keeps refusing them; the engine wraps its reads of
    stored specs in this."""
    token = _CHECK_AT_SAVE.set(False)
    try:
        yield
    finally:
        _CHECK_AT_SAVE.reset(token)


_NO_VALUE = {
    "exists": "whether the path selected anything",
    "nexists": "whether the path selected nothing",
    "empty": 'whether the path selected nothing, null, "", [] or {}',
    "nempty": 'whether the path selected something that is not null, "", [] or {}',
}
_TEXT_OPS = ("startswith", "endswith")
_ORDERED_OPS = ("gt", "ge", "lt", "le")
_KIND = {bool: "a boolean", list: "a list", dict: "a mapping", str: "a string",
         int: "a number", float: "a number"}  # fmt: skip


def _kind(value: Any) -> str:
    return _KIND.get(type(value), type(value).__name__)


def _never_matches(op: str, path: str, value: Any) -> str | None:
    """Why ``{path, op, value}`` can never be true (a sentence with the likely fix), or
    None. Saving refuses these: the rule would silently never (or always) match."""
    cond = f"`{path} {op}`"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{cond} with {value} never matches: NaN and infinity are not numbers"
    if op in ("in", "nin"):
        if not isinstance(value, list):
            return (f"op '{op}' needs a list value, e.g. [usd, eur] (for one value use "
                    f"`{'eq' if op == 'in' else 'ne'}`)")
        bad = [v for v in value if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            return f"{cond}: {bad[0]} in the list never matches: NaN and infinity are not numbers"
    if op in ("eq", "ne") and isinstance(value, list):
        twin = "in" if op == "eq" else "nin"
        return (f"{op} with a list compares to the whole list; did you mean `{twin}`? "
                f"({cond} {'is true only when' if op == 'eq' else 'is false only when'} "
                f"the selected value is itself that list)")
    if op in _TEXT_OPS and not _is_text_like(value):
        fix = ("write one condition per prefix under `any:`, or a `regex` like ^(a|b)"
               if isinstance(value, list) else "give the text to look for, as a string")
        return f"{cond} tests text, so {_kind(value)} value never matches; {fix}"
    if op in _ORDERED_OPS and not (_is_text_like(value)):
        if isinstance(value, bool):
            fix = f"booleans are not ordered; did you mean `eq {str(value).lower()}`?"
        elif isinstance(value, list):
            fix = "did you mean `in`, or one bound per condition under `all:`?"
        else:
            fix = "compare with a number (or a string)"
        return f"{cond} with {_kind(value)} never matches: {fix}"
    if op == "regex" and not isinstance(value, str):
        shown = str(value).lower() if isinstance(value, bool) else value
        return (f"op 'regex' needs a string pattern; {cond} with {_kind(value)} never "
                f"matches (quote it, e.g. '^{shown}$')" if not isinstance(value, list | dict)
                else f"op 'regex' needs a string pattern; {cond} with {_kind(value)} never "
                     "matches (for several patterns use one regex with `|`, e.g. ^(a|b)$)")
    return None


def _is_text_like(value: Any) -> bool:
    """A string or a number: what text tests and ordering can compare with."""
    return isinstance(value, str) or (isinstance(value, int | float)
                                      and not isinstance(value, bool))


class AllGroup(StrictModel):
    """True when every child condition is true."""

    all: list[Condition] = Field(min_length=1)


class AnyGroup(StrictModel):
    """True when at least one child condition is true."""

    any: list[Condition] = Field(min_length=1)


class NotGroup(StrictModel):
    """True when the child condition is false (written ``not:``)."""

    not_: Condition = Field(alias="not")


_TAGS: dict[type, str] = {
    Predicate: "(predicate)",
    AllGroup: "(all)",
    AnyGroup: "(any)",
    NotGroup: "(not)",
}
CONDITION_TAGS = frozenset(_TAGS.values())
"""Union tags pydantic puts into error locations; ``rules.schema`` strips them."""


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return f"({key})"
        return "(predicate)" if "path" in value or "op" in value else None
    return _TAGS.get(type(value))


Condition = Annotated[
    Annotated[Predicate, Tag("(predicate)")]
    | Annotated[AllGroup, Tag("(all)")]
    | Annotated[AnyGroup, Tag("(any)")]
    | Annotated[NotGroup, Tag("(not)")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition_shape",
        custom_error_message="a condition needs `path` and `op`, or one of `all`, `any`, `not`",
    ),
]

for _group in (AllGroup, AnyGroup, NotGroup):
    _group.model_rebuild()
