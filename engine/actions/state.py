"""``state`` steps: merge fields into a conversation's stored memory."""

from __future__ import annotations

from typing import Any

from engine.actions.base import StepContext
from engine.errors import PermanentActionError
from engine.store.conversations import StateStore


def run(rendered: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    key = rendered.get("key")
    if key is None or str(key) == "":
        raise PermanentActionError("state step needs a non-empty key")
    changes = rendered.get("set") or {}
    if not isinstance(changes, dict):
        raise PermanentActionError(f"state 'set' must be a mapping, got {type(changes).__name__}")
    data = StateStore(ctx.db).merge(str(key), changes, rendered.get("ttl_s"))
    return {"key": str(key), "state": data}
