"""Turning a raw request body into the event document's ``body``.

JSON (``application/json``, ``*+json``) becomes its value; form posts become a dict of
fields (a repeated field becomes a list); text and XML stay text. Anything else is
refused as unsupported (415) — an empty body is fine with any type.
"""

from __future__ import annotations

import json
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


def parse_json(raw: bytes) -> Any:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise BodyError(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def parse_form(raw: bytes, charset: str = "utf-8") -> dict[str, Any]:
    try:
        text = raw.decode(charset)
    except (UnicodeError, LookupError):
        raise BodyError(f"form body is not valid {charset}") from None
    fields = parse_qs(text, keep_blank_values=True)
    out: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in fields.items()}
    # Slack's interactive components post one form field, payload=<JSON>: decode it so
    # conditions and templates can reach inside ($.body.payload.actions[0].value).
    payload = out.get("payload")
    if isinstance(payload, str) and payload[:1] in ("{", "["):
        try:
            out["payload"] = json.loads(payload)
        except ValueError:
            pass
    return out


def parse_body(content_type: str, raw: bytes) -> Any:
    """The parsed body for the event document (None for an empty body)."""
    if not raw.strip():
        return None
    mt = media_type(content_type)
    if mt == "application/json" or mt.endswith("+json"):
        return parse_json(raw)
    if mt == "application/x-www-form-urlencoded":
        return parse_form(raw, _charset(content_type))
    if mt == "" :
        # No declared type: JSON if it parses, else text.
        try:
            return parse_json(raw)
        except BodyError:
            pass
    if mt == "" or mt.startswith("text/") or mt in ("application/xml", "application/x-ndjson"):
        try:
            return raw.decode(_charset(content_type))
        except (UnicodeError, LookupError):
            raise BodyError("text body is not valid in its declared charset") from None
    raise UnsupportedMediaType(
        f"content type {mt!r} is not supported; send JSON, a form, text or XML"
    )
