"""Shared pieces of the rule models: the strict base class, patterns and checked field types.

``TemplateStr``/``TemplateAny`` compile their templates while validating, ``JsonPath``
compiles its path, so a model that validates never fails to compile later.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rules.errors import PathError, TemplateError
from rules.paths import compile_path
from rules.step_checks import check_size
from rules.templating import check_template, compile_value

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
RULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,127}$"
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
COLUMN_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SECRET_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
TABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"

PATTERN_HINTS: dict[str, str] = {
    SLUG_PATTERN: "must be 1-64 lowercase letters, digits, '-' or '_' (starting with a letter "
    "or digit)",
    RULE_NAME_PATTERN: "must be 1-128 lowercase letters, digits, '-', '_' or '.' (starting "
    "with a letter or digit)",
    STEP_ID_PATTERN: "must be letters, digits and '_', not starting with a digit",
    COLUMN_PATTERN: "must be a column name (letters, digits and '_', not starting with a digit)",
    SECRET_NAME_PATTERN: "must be a secret name (letters, digits, '_', '-' or '.')",
    TABLE_PATTERN: "must be a table name, optionally schema.table (letters, digits and '_')",
}
"""Human wording for pattern mismatches, used when pydantic errors are translated."""

# Every number in a rule is bounded: a value the database column, a timedelta or Redis
# cannot hold is refused at save time, naming the field, instead of failing later.
MAX_PRIORITY = 1_000_000
"""``priority`` lies in -MAX_PRIORITY..MAX_PRIORITY (stored in a 32-bit column)."""
MAX_TOLERANCE_S = 7 * 86_400
"""The longest timestamp tolerance a source may allow (a week)."""
MAX_RETRY_WAIT_S = 7 * 86_400
"""The longest wait between two attempts of a step (a week)."""
MAX_DELAY_S = 366 * 86_400
"""The longest a ``delay`` step may wait (a year)."""
MAX_TTL_S = 10 * 366 * 86_400
"""The longest conversation state may live without being touched (ten years)."""

Priority = Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]
"""A rule's priority: higher is evaluated first."""


class StrictModel(BaseModel):
    """Base of every rule model: unknown fields are errors; aliases and names both accepted;
    numbers are finite (no NaN or infinity from YAML's ``.nan``/``.inf``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


def _template_str(value: str) -> str:
    check_size(value, "this template")
    try:
        check_template(value)
    except TemplateError as exc:
        raise ValueError(str(exc)) from exc
    return value


def template_any(value: Any) -> Any:
    """Validator: every string inside ``value`` must compile as a template."""
    check_size(value)
    try:
        compile_value(value)
    except TemplateError as exc:
        raise ValueError(str(exc)) from exc
    return value


def _jsonpath(value: str) -> str:
    try:
        compile_path(value)
    except PathError as exc:
        raise ValueError(str(exc)) from exc
    return value


TemplateStr = Annotated[str, AfterValidator(_template_str)]
"""A string that must compile as a Jinja template."""

TemplateAny = Annotated[Any, AfterValidator(template_any)]
"""Any JSON value whose strings (at any depth) must compile as Jinja templates."""

JsonPath = Annotated[str, AfterValidator(_jsonpath)]
"""A string that must compile as a JSONPath (see ``rules.paths``)."""

Column = Annotated[str, Field(pattern=COLUMN_PATTERN)]
"""A database column name."""

SecretName = Annotated[str, Field(pattern=SECRET_NAME_PATTERN)]
"""The NAME of a stored secret (never the value)."""
