"""Turning pydantic and YAML errors into ``FieldError``s that name file, rule, field and value;
reading and writing rule-file YAML (YAML 1.2 core: ``load_yaml``, ``dump_yaml``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import ValidationError

from rules.condition_models import CONDITION_TAGS
from rules.display import shorten
from rules.errors import FieldError, RuleValidationError
from rules.messages import humane
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
    if (sentence := humane(error)) is not None:
        return sentence
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


_CORE_12: list[tuple[str, str, str]] = [
    # (tag, regexp, first characters): the YAML 1.2 core schema's implicit resolvers, with
    # one deliberate difference: an integer with a leading zero (``01234``) stays a string,
    # as in JSON (a code, not a number; YAML 1.1 tools would read it as octal 668).
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$",
     "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
]
"""What a plain scalar means in a rule file, everywhere: ``hookwise apply``/``test``, the
API's imports and the rule builder (web/static/builder.js builds the same js-yaml schema).
Everything else — ``yes no on off y n``, ``12:30``, ``2026-01-01``, ``1_000``, ``<<`` —
is a string."""


def _resolvers(table: list[tuple[str, str, str]]) -> dict[Any, list[tuple[str, Any]]]:
    out: dict[Any, list[tuple[str, Any]]] = {}
    for tag, regexp, first in table:
        compiled = re.compile(regexp)
        for ch in first:
            out.setdefault(ch, []).append((tag, compiled))
        if tag.endswith(":null"):
            out.setdefault("", []).append((tag, compiled))
    return out


class _Loader(yaml.SafeLoader):
    """Safe YAML with the YAML 1.2 core schema's implicit types (``_CORE_12``)."""

    yaml_implicit_resolvers = _resolvers(_CORE_12)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        value = str(self.construct_scalar(node))
        try:
            return int(value, 0)  # also 0o17 and 0x1F; only what _CORE_12 lets through
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"not a YAML 1.2 integer: {value!r}", node.start_mark) from None

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = str(self.construct_scalar(node))
        lowered = value.lower()
        if lowered.endswith((".inf", ".nan")):
            number = float(lowered.lstrip("+").replace(".", ""))
            return number
        try:
            return float(value)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"not a YAML 1.2 float: {value!r}", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)


_YAML_11_EXTRA = [("tag:yaml.org,2002:bool", r"^(?:y|Y|n|N)$", "yYnN")]
"""YAML 1.1's one-letter booleans, which PyYAML does not read but other 1.1 tools do."""


class _Dumper(yaml.SafeDumper):
    """Writes what ``_Loader`` reads back exactly, and quotes every string that YAML 1.1
    (PyYAML's defaults, older tools) would read as something else: ``'no'``, ``'on'``,
    ``'12:30'``, ``'01234'``, ``'2026-01-01'``, ``'1_000'``."""

    yaml_implicit_resolvers = {
        key: [*_resolvers(_CORE_12).get(key, []), *_resolvers(_YAML_11_EXTRA).get(key, []),
              *yaml.SafeDumper.yaml_implicit_resolvers.get(key, [])]
        for key in {*_resolvers(_CORE_12), *_resolvers(_YAML_11_EXTRA),
                    *yaml.SafeDumper.yaml_implicit_resolvers}
    }


def _represent_str(dumper: _Dumper, data: str) -> yaml.ScalarNode:
    if any(ch in data for ch in "\x85\u2028\u2029"):  # PyYAML single-quotes NEL unescaped
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    return dumper.represent_str(data)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(doc: Any) -> str:
    """``doc`` as block YAML (keys in order, unicode as is) that every reader reads alike."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def load_yaml(text: str, *, file: str | None = None) -> Any:
    """Parse YAML 1.2 core (``_CORE_12``); syntax errors become a RuleValidationError
    naming the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleValidationError(
            [FieldError(loc="", message=f"YAML syntax error{where}: {problem}", file=file)]
        ) from exc
