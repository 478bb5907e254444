"""Rules: the list with enable toggles, priority and when each last matched.

Building and editing a rule (``/rules/new``, ``/rules/<name>/edit``) is the rule
builder's (``web/ui/builder.py``); this page links to it.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for

from engine.store import queries
from engine.store.models import Rule
from rules.schema import parse_rule
from web.context import runtime
from web.ui import bp, is_htmx


def rule_row(row: Rule, activity: dict[str, Any]) -> dict[str, Any]:
    spec = parse_rule(row.spec)
    return {"name": row.name, "source": row.source, "enabled": row.enabled,
            "priority": row.priority, "version": row.version, "stop": spec.stop,
            "description": spec.description, "steps": [a.type for a in spec.actions],
            "last_matched_at": activity.get("last_matched_at"),
            "matches": activity.get("matches", 0)}


@bp.get("/rules")
def rules_list() -> str:
    rt = runtime()
    activity = queries.rule_activity(rt.db)
    rows = [rule_row(r, activity.get(r.name, {})) for r in rt.catalog.list_rules()]
    return render_template("rules.html", rules=rows)


@bp.post("/rules/<name>/toggle")
def rule_toggle(name: str) -> Any:
    """Flip ``enabled`` (a new rule version); answers the re-rendered row to htmx."""
    rt = runtime()
    row = rt.catalog.get_rule(name)
    if row is None:
        abort(404, f"There is no rule “{name}”.")
    spec = parse_rule(row.spec)
    rt.catalog.save([], [spec.model_copy(update={"enabled": not spec.enabled})])
    row = rt.catalog.get_rule(name)
    assert row is not None
    state = "enabled" if row.enabled else "disabled"
    if is_htmx():
        activity = queries.rule_activity(rt.db).get(name, {})
        return render_template("_rule_row.html", r=rule_row(row, activity), announce=state)
    flash(f"Rule “{name}” {state}.", "success")
    return redirect(url_for("ui.rules_list"))
