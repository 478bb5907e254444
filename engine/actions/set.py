"""The ``set`` step: named values computed once from templates (typed like ``json:``
values); later steps read them as ``steps.<id>.<name>``."""

from __future__ import annotations

from typing import Any

from engine.actions.base import StepContext


def run(rendered: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    values = rendered.get("values") or {}
    return dict(values)
