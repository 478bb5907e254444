"""Condition models: a predicate, or an ``all``/``any``/``not`` group, nested freely.

Which model a mapping is decided by its keys (``all``, ``any``, ``not``, else ``path``/``op``),
so errors point into the right model instead of listing every alternative.
Re-exported by ``rules.schema``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from rules.errors import RegexError
from rules.model_base import JsonPath, StrictModel
from rules.operators import OPERATORS, compile_regex

OpName = Literal[
    "eq", "ne", "gt", "ge", "lt", "le", "in", "nin", "contains", "ncontains",
    "startswith", "endswith", "regex", "exists", "nexists", "empty", "nempty",
]  # fmt: skip


class Predicate(StrictModel):
    """One test: the values at ``path`` compared by ``op`` with ``value`` (or ``value_path``).

    Ops ``exists nexists empty nempty`` take no value; every other op needs a non-null
    ``value`` or a ``value_path`` (test for null with ``empty``). ``in``/``nin`` need a list;
    ``regex`` a pattern that compiles.
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
        op = info.data.get("op")
        if op in ("in", "nin") and value is not None and not isinstance(value, list):
            raise ValueError(f"op '{op}' needs a list value, e.g. [usd, eur]")
        if op == "regex" and value is not None:
            if not isinstance(value, str):
                raise ValueError("op 'regex' needs a string pattern")
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
            raise ValueError(f"op '{self.op}' takes no `value`")
        return self


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
