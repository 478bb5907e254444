"""Turning pydantic and YAML errors into ``FieldError``s that name file, rule, field and value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import ValidationError

from rules.condition_models import CONDITION_TAGS
from rules.display import shorten
from rules.errors import FieldError, RuleValidationError
from rules.model_base import PATTERN_HINTS
from rules.step_models import STEP_TYPES

_TAGS = CONDITION_TAGS | frozenset(f"({t})" for t in STEP_TYPES)


def format_loc(loc: Iterable[str | int]) -> str:
    """``('actions', 1, '(webhook)', 'url')`` → ``actions[1].url`` (union tags dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _TAGS or part in ("str", "[key]") or part.startswith(("function-", "list[")):
            continue  # pydantic's union/validator bookkeeping, meaningless to users
        else:
            out += f".{part}" if out else part
    return out


def _message(error: Any) -> str:
    kind, msg, ctx = error["type"], error["msg"], error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return f"unknown field '{error['loc'][-1]}'"
    if kind in ("union_tag_invalid", "step_type_missing"):
        given = error.get("input")
        if isinstance(given, dict) and "type" in given:
            return f"unknown step type {given['type']!r} (one of: {', '.join(STEP_TYPES)})"
        return f"a step needs `type` (one of: {', '.join(STEP_TYPES)})"
    if kind == "string_pattern_mismatch":
        return PATTERN_HINTS.get(str(ctx.get("pattern")), msg)
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    return msg


def field_errors(
    exc: ValidationError, *, file: str | None, rule: str | None, prefix: str = ""
) -> list[FieldError]:
    """One FieldError per pydantic error, located relative to the rule/source."""
    out: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors():
        loc = format_loc(error["loc"])
        if prefix:
            loc = f"{prefix}.{loc}" if loc else prefix
        message = _message(error)
        if (loc, message) in seen:  # unions can report one problem once per member
            continue
        seen.add((loc, message))
        value = None if error["type"] == "missing" else shorten(error.get("input"))
        last = out[-1] if out else None
        if last and last.loc == loc and message.startswith(_TYPE_MSG) and _TYPE_MSG in last.message:
            # one union field, one message: "Input should be a valid string or a valid list"
            message = f"{last.message} or {message.removeprefix(_TYPE_MSG)}"
            out.pop()
        out.append(FieldError(loc=loc, message=message, file=file, rule=rule, value=value))
    return out


_TYPE_MSG = "Input should be "


class _Loader(yaml.SafeLoader):
    """Safe YAML without timestamp parsing: dates stay strings, as they would in JSON."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str, *, file: str | None = None) -> Any:
    """Parse YAML; syntax errors become a RuleValidationError naming the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleValidationError(
            [FieldError(loc="", message=f"YAML syntax error{where}: {problem}", file=file)]
        ) from exc
