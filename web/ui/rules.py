"""Rules: the list with enable toggles, priority and when each last matched; a rule's
versions (who changed what when, a side-by-side diff, restore) and deleting a rule.

Building and editing a rule (``/rules/new``, ``/rules/<name>/edit``) is the rule
builder's (``web/ui/builder.py``); this page links to it.
"""

from __future__ import annotations

import difflib
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.store import queries
from engine.store.models import Rule
from engine.store.rule_files import to_yaml
from rules.condition_models import stored_conditions
from rules.schema import parse_rule
from web.api.errors import ApiError
from web.api.rules import principal, restore, versions_out
from web.context import runtime
from web.ui import bp, is_htmx


def rule_row(row: Rule, activity: dict[str, Any], executions: int = 0) -> dict[str, Any]:
    with stored_conditions():
        spec = parse_rule(row.spec)
    return {"name": row.name, "source": row.source, "enabled": row.enabled,
            "priority": row.priority, "version": row.version, "stop": spec.stop,
            "description": spec.description, "steps": [a.type for a in spec.actions],
            "last_matched_at": activity.get("last_matched_at"),
            "matches": activity.get("matches", 0), "executions": executions}


def who(actor: str | None) -> str:
    """``user:ada@x`` → ``ada@x``; ``token:ci`` → ``token ci``; ``cli:root`` →
    ``command line (root)``."""
    if not actor:
        return "—"
    kind, _, name = actor.partition(":")
    if kind == "user":
        return name
    if kind == "token":
        return f"API token {name}"
    if kind == "cli":
        return f"command line ({name})" if name else "command line"
    return actor


@bp.get("/rules")
def rules_list() -> str:
    rt = runtime()
    activity = queries.rule_activity(rt.db)
    rows = rt.catalog.list_rules()
    counts = rt.catalog.executions_of([r.name for r in rows])
    return render_template("rules.html", rules=[
        rule_row(r, activity.get(r.name, {}), counts.get(r.name, 0)) for r in rows])


@bp.post("/rules/<name>/toggle")
def rule_toggle(name: str) -> Any:
    """Flip ``enabled`` (a history entry, not a new version); answers the re-rendered row
    to htmx."""
    rt = runtime()
    row = rt.catalog.get_rule(name)
    if row is None:
        abort(404, f"There is no rule “{name}”.")
    with stored_conditions():
        spec = parse_rule(row.spec)
    rt.catalog.save([], [spec.model_copy(update={"enabled": not spec.enabled})],
                    actor=principal())
    row = rt.catalog.get_rule(name)
    assert row is not None
    state = "enabled" if row.enabled else "disabled"
    if is_htmx():
        activity = queries.rule_activity(rt.db).get(name, {})
        count = rt.catalog.executions_of([name]).get(name, 0)
        return render_template("_rule_row.html", r=rule_row(row, activity, count),
                               announce=state)
    flash(f"Rule “{name}” {state}.", "success")
    return redirect(url_for("ui.rules_list"))


@bp.post("/rules/<name>/delete")
def rule_delete(name: str) -> Response:
    if runtime().catalog.delete_rule(name, actor=principal()):
        flash(f"Rule “{name}” deleted. Its past executions stay on their events' pages; "
              "its versions are kept.", "success")
    else:
        flash(f"There is no rule “{name}” (deleted already?).", "error")
    return redirect(url_for("ui.rules_list"))


def side_by_side(old: str, new: str) -> list[dict[str, Any]]:
    """Rows of a two-column diff of two texts: ``{kind, a, a_no, b, b_no}``, kind one of
    equal / replace / delete / insert (a missing side is None)."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b,
                                                        autojunk=False).get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            rows.append({"kind": tag,
                         "a": a[i] if i < i2 else None, "a_no": i + 1 if i < i2 else None,
                         "b": b[j] if j < j2 else None, "b_no": j + 1 if j < j2 else None})
    return rows


def _version_arg(key: str, known: list[int], default: int) -> int:
    raw = request.args.get(key, "")
    try:
        value = int(raw)
    except ValueError:
        return default
    return value if value in known else default


@bp.get("/rules/<name>/versions")
def rule_versions(name: str) -> str:
    catalog = runtime().catalog
    revisions = catalog.revisions(name)
    if not revisions:
        abort(404, f"There is no rule “{name}”, and none by that name was ever saved.")
    row = catalog.get_rule(name)
    data = versions_out(revisions, catalog.history(name))
    for item in data["items"]:
        item["who"] = who(item["actor"])
    for h in data["history"]:
        h["who"] = who(h["actor"])
    numbers = [r.version for r in revisions]  # newest first
    b = _version_arg("b", numbers, numbers[0])
    a = _version_arg("a", numbers, numbers[1] if len(numbers) > 1 else numbers[0])
    by_number = {r.version: r for r in revisions}
    left, right = to_yaml(by_number[a].spec), to_yaml(by_number[b].spec)
    return render_template(
        "rule_versions.html", name=name, rule=row, versions=data["items"],
        history=data["history"], numbers=numbers, a=a, b=b,
        diff=side_by_side(left, right), same=left == right,
        executions=catalog.executions_of([name]).get(name, 0))


@bp.post("/rules/<name>/versions/<int:version>/restore")
def rule_restore(name: str, version: int) -> Response:
    try:
        restore(name, version)
    except ApiError as exc:
        if exc.status == 404:
            abort(404, f"Rule “{name}” has no version {version}.")
        flash(f"Version {version} of “{name}” could not be restored: {exc.message}", "error")
        return redirect(url_for("ui.rule_versions", name=name))
    row = runtime().catalog.get_rule(name)
    assert row is not None
    flash(f"Restored version {version} of “{name}” as version {row.version}.", "success")
    return redirect(url_for("ui.rule_versions", name=name))
