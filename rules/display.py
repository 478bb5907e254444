"""Small, JSON-safe renderings of arbitrary event values for traces and error messages."""

from __future__ import annotations

from typing import Any

MAX_STR = 200
"""Strings longer than this are cut (with "…") in traces and messages."""

MAX_ITEMS = 5
"""Lists keep this many items and mappings this many keys (times two) when shortened."""


def shorten(value: Any, *, depth: int = 3) -> Any:
    """A JSON-serialisable copy of ``value`` with long strings cut and big containers trimmed.

    Trimmed lists end with a ``"… (+N more)"`` marker; trimmed mappings get a ``"…"`` key.
    Anything that is not JSON data becomes its ``repr``.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_STR else value[:MAX_STR] + "…"
    if isinstance(value, list | tuple):
        if depth <= 0:
            return f"[… {len(value)} items]"
        out = [shorten(v, depth=depth - 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            out.append(f"… (+{len(value) - MAX_ITEMS} more)")
        return out
    if isinstance(value, dict):
        if depth <= 0:
            return f"{{… {len(value)} keys}}"
        keys = list(value)[: MAX_ITEMS * 2]
        short = {str(k): shorten(value[k], depth=depth - 1) for k in keys}
        if len(value) > len(keys):
            short["…"] = f"+{len(value) - len(keys)} more keys"
        return short
    return shorten(repr(value))


def one_line(value: Any) -> str:
    """``value`` shortened and written as one line (strings quoted, like ``repr``)."""
    text = repr(shorten(value))
    return text.replace("\n", "\\n")
