"""API errors: one exception, answered as ``{"error": code, "message": sentence}``.

Validation failures (422 ``validation_failed``) add ``errors``: one item per problem,
``{"loc": "actions[0].url", "message": ..., "value": ...}`` with ``loc`` relative to the
rule or source (or to the request body for envelope fields), the shape the rule builder
shows beside its fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeVar

from flask import Response, jsonify, request
from pydantic import BaseModel, ValidationError

from rules.display import shorten
from rules.errors import FieldError, RuleValidationError
from rules.validation import field_errors
from web.api.registry import bp

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An answer other than success; raised from views, rendered by ``_render``."""

    def __init__(self, status: int, code: str, message: str,
                 errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} does not exist")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def invalid(problems: Iterable[FieldError], prefix: str = "") -> ApiError:
    """422 listing ``problems``; ``prefix`` locates them inside the request body."""
    items = []
    for p in problems:
        loc = f"{prefix}.{p.loc}" if prefix and p.loc else (p.loc or prefix)
        items.append({"loc": loc, "message": p.message, "value": _jsonable(p.value)})
    first = items[0] if items else {"loc": "", "message": "invalid request"}
    where = f"{first['loc']}: " if first["loc"] else ""
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    return ApiError(422, "validation_failed",
                    f"the request is invalid: {where}{first['message']}{more}", items)


def invalid_field(loc: str, message: str, value: Any = None) -> ApiError:
    return invalid([FieldError(loc=loc, message=message, value=value)])


def from_rule_errors(exc: RuleValidationError, prefix: str = "") -> ApiError:
    return invalid(exc.errors, prefix)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return shorten(repr(value))


def json_body() -> Any:
    """The request body parsed as JSON; 400 ``bad_request`` when absent or malformed."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "bad_request", "the request needs a JSON body")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", f"the request body is not valid JSON: {exc}") from None


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    """``data`` as ``model``; 422 with every problem located when it does not fit."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(field_errors(exc, file=None, rule=None), prefix) from None


def body(model: type[M]) -> M:
    return validate(model, json_body())


def query(model: type[M]) -> M:
    """The query string as ``model`` (repeated names keep their last value)."""
    return validate(model, request.args.to_dict())


@bp.errorhandler(ApiError)
def _render(exc: ApiError) -> tuple[Response, int]:
    payload: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if exc.errors is not None:
        payload["errors"] = exc.errors
    return jsonify(payload), exc.status
