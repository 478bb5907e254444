"""Turning a raw request body into the event document's ``body``.

JSON (``application/json``, ``*+json``) becomes its value; form posts become a dict of
fields (a repeated field becomes a list); text and XML stay text. Anything else is
refused as unsupported (415) — an empty body is fine with any type.

Every JSON decoded here (a JSON body, an undeclared body that parses as JSON, a form's
``payload=`` field) passes the same rules: at most MAX_JSON_DEPTH levels deep, counted
from the body, and no NaN or infinity (``NaN``, ``Infinity``, ``1e999``), which the
API could not emit as standard JSON. Breaking one is a BodyError (400), never a 5xx.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qs

from engine.errors import BodyError, UnsupportedMediaType

MAX_JSON_DEPTH = 64


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k.lower() == "charset" and v:
            return v.strip('"').lower()
    return "utf-8"


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        v, d = stack.pop()
        if d > limit:
            return d
        deepest = max(deepest, d)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


class _NotJSON(ValueError):
    """The text is not JSON at all (as opposed to JSON that breaks a rule)."""


def _non_finite(token: str) -> float:
    raise BodyError(f"JSON body has a non-finite number ({token}): NaN or infinity "
                    "is not allowed")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):  # 1e999 overflows to infinity
        _non_finite(token)
    return value


def _too_deep() -> BodyError:
    return BodyError(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels")


def check_depth(value: Any, base: int = 0) -> None:
    """The one depth rule: ``value`` (at ``base`` levels inside the body) may not reach
    deeper than MAX_JSON_DEPTH levels."""
    if _depth(value, MAX_JSON_DEPTH - base) > MAX_JSON_DEPTH - base:
        raise _too_deep()


def _loads(raw: bytes | str) -> Any:
    """JSON under the body rules: BodyError when it is too deep or has a non-finite
    number; _NotJSON when it is not JSON at all."""
    try:
        return json.loads(raw, parse_constant=_non_finite, parse_float=_finite_float)
    except RecursionError:
        # the decoder recursed ~1,000 levels deep: far past MAX_JSON_DEPTH
        raise _too_deep() from None
    except BodyError:
        raise
    except ValueError as exc:
        raise _NotJSON(str(exc)) from None


def parse_json(raw: bytes, base: int = 0) -> Any:
    """A JSON body (``base``: how many levels deep it sits inside the body)."""
    try:
        value = _loads(raw)
    except _NotJSON as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    check_depth(value, base)
    return value


def parse_form(raw: bytes, charset: str = "utf-8") -> dict[str, Any]:
    try:
        text = raw.decode(charset)
    except (UnicodeError, LookupError):
        raise BodyError(f"form body is not valid {charset}") from None
    fields = parse_qs(text, keep_blank_values=True)
    out: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in fields.items()}
    # Slack's interactive components post one form field, payload=<JSON>: decode it so
    # conditions and templates can reach inside ($.body.payload.actions[0].value). It is
    # JSON like any other body: the same depth (counted from the body: the form is one
    # level) and number rules; a payload that is not JSON at all stays a string.
    payload = out.get("payload")
    if isinstance(payload, str) and payload[:1] in ("{", "["):
        try:
            value = _loads(payload)
        except _NotJSON:
            pass
        else:
            check_depth(value, base=1)
            out["payload"] = value
    return out


def parse_body(content_type: str, raw: bytes, *, github: bool = False) -> Any:
    """The parsed body for the event document (None for an empty body).

    ``github``: the request is a GitHub hook (a ``github`` source, or an X-GitHub-Event
    header). A GitHub hook set to ``application/x-www-form-urlencoded`` posts its JSON as
    one ``payload=`` field: the body is then that JSON, exactly as with
    ``application/json``, so ``$.body.ref`` means the same whatever the hook's setting.
    """
    body = _parse_body(content_type, raw)
    if (github and isinstance(body, dict) and set(body) == {"payload"}
            and isinstance(body["payload"], dict)
            and media_type(content_type) == "application/x-www-form-urlencoded"):
        return body["payload"]
    return body


def _parse_body(content_type: str, raw: bytes) -> Any:
    if not raw.strip():
        return None
    mt = media_type(content_type)
    if mt == "application/json" or mt.endswith("+json"):
        return parse_json(raw)
    if mt == "application/x-www-form-urlencoded":
        return parse_form(raw, _charset(content_type))
    if mt == "":
        # No declared type: JSON if it parses (under the same rules), else text.
        try:
            value = _loads(raw)
        except _NotJSON:
            pass
        else:
            check_depth(value)
            return value
    if mt == "" or mt.startswith("text/") or mt in ("application/xml", "application/x-ndjson"):
        try:
            return raw.decode(_charset(content_type))
        except (UnicodeError, LookupError):
            raise BodyError("text body is not valid in its declared charset") from None
    raise UnsupportedMediaType(
        f"content type {mt!r} is not supported; send JSON, a form, text or XML"
    )
