"""Sentences for pydantic's length errors, about the user's rule ("List should have at
least 1 item after validation, not 0" → "must have at least 1 item (it has none): a
rule needs at least one action"). ``rules.validation`` asks here first."""

from __future__ import annotations

from typing import Any

# what a list at this field holds, by its last name
WHAT = {"actions": "action", "steps": "step", "all": "condition", "any": "condition",
        "cases": "case", "to": "recipient", "values": "value"}
WHY = {"actions": "a rule needs at least one action",
       "all": "`all` needs at least one condition (or remove it)",
       "any": "`any` needs at least one condition (or remove it)",
       "steps": "a block needs at least one step"}


def _count(n: Any, noun: str) -> str:
    if n in (0, None):
        return "none"
    return f"{n} {noun}{'s' if n != 1 else ''}"


def humane(error: dict[str, Any]) -> str | None:
    """A sentence for a pydantic error of the length kinds; None for the others."""
    kind, ctx = error["type"], error.get("ctx") or {}
    field = next((p for p in reversed(error.get("loc") or ()) if isinstance(p, str)), "")
    noun = WHAT.get(field, "item")
    if kind == "too_short":
        least = ctx.get("min_length")
        text = f"must have at least {least} item{'s' if least != 1 else ''} " \
               f"(it has {_count(ctx.get('actual_length'), noun)})"
        return f"{text}: {WHY[field]}" if field in WHY and least == 1 else text
    if kind == "too_long":
        return f"can have at most {ctx.get('max_length')} {noun}s " \
               f"(it has {ctx.get('actual_length')})"
    if kind == "string_too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"must be at least {least} characters"
    if kind == "string_too_long":
        given = error.get("input")
        size = f" (it has {len(given):,})" if isinstance(given, str) else ""
        return f"is too long: at most {ctx.get('max_length'):,} characters{size}"
    return None
