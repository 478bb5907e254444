"""``/api/v1/rules``: rules, CRUD by name, the enable/priority switch, and revisions."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, url_for

from engine.errors import Conflict, NotFound
from engine.store.models import Rule, RuleHistory, RuleRevision
from engine.store.queries import Page, rule_activity
from engine.store.rule_files import check_references
from rules.errors import RuleValidationError
from rules.schema import RuleSpec, parse_rule
from web.api.errors import (
    body,
    conflict,
    from_rule_errors,
    invalid_field,
    json_body,
    not_found,
    query,
)
from web.api.models import CatalogQuery, RuleList, RuleOut, RulePatch, RuleRevisionList
from web.api.registry import operation
from web.context import runtime


def rule_out(row: Rule, activity: dict[str, dict[str, Any]]) -> dict[str, Any]:
    seen = activity.get(row.name, {})
    return {
        "name": row.name,
        "source": row.source,
        "enabled": row.enabled,
        "priority": row.priority,
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "last_matched_at": seen.get("last_matched_at"),
        "matches": seen.get("matches", 0),
        "spec": row.spec,
    }


def parse_draft(data: Any, prefix: str = "", name: str | None = None) -> RuleSpec:
    """A rule document as a RuleSpec; 422 with each problem located inside the rule."""
    if name is not None and isinstance(data, dict):
        given = data.setdefault("name", name)
        if given != name:
            raise invalid_field("name", f"must be {name!r} (the name in the URL) or absent",
                                given)
    try:
        return parse_rule(data)
    except RuleValidationError as exc:
        raise from_rule_errors(exc, prefix) from None


def principal() -> str | None:
    """Who is asking (``user:EMAIL`` or ``token:NAME``), for the rule's history."""
    return g.get("principal")


def _save(spec: RuleSpec) -> str:
    rt = runtime()
    try:
        check_references(rt.catalog, [], [spec])
    except RuleValidationError as exc:
        raise from_rule_errors(exc) from None
    [change] = rt.catalog.save([], [spec], actor=principal())
    return change.action


SAVES = ("created", "updated", "renamed", "restored")


def versions_out(revisions: list[RuleRevision], history: list[RuleHistory]
                 ) -> dict[str, Any]:
    """A rule's versions, each with who saved it and what changed, and its history."""
    saved = {h.version: h for h in reversed(history) if h.action.value in SAVES}
    items = []
    for r in revisions:
        h = saved.get(r.version)
        items.append({"version": r.version, "created_at": r.created_at.isoformat(),
                      "actor": h.actor if h else None, "note": h.detail if h else None,
                      "spec": r.spec})
    return {"items": items,
            "history": [{"action": h.action.value, "version": h.version, "actor": h.actor,
                         "detail": h.detail, "created_at": h.created_at.isoformat()}
                        for h in history]}


def restore(name: str, version: int) -> RuleSpec:
    """Save version ``version`` of rule ``name`` as its newest version (under its current
    name and switch; a deleted rule is created again). 404 without that version."""
    rt = runtime()
    rev = rt.catalog.revision(name, version)
    if rev is None:
        raise not_found(f"version {version} of rule {name!r}")
    row = rt.catalog.get_rule(name)
    doc = {**rev.spec, "name": name}
    doc.pop("enabled", None)
    if row is not None and not row.enabled:
        doc["enabled"] = False
    spec = parse_draft(doc)
    try:
        check_references(rt.catalog, [], [spec])
    except RuleValidationError as exc:
        raise from_rule_errors(exc) from None
    rt.catalog.restore_revision(name, version, spec, actor=principal())
    return spec


def rename(old: str, new: str, changes: dict[str, Any] | None = None) -> RuleSpec:
    """Rename rule ``old`` (keeping its id, versions, history and executions); 404, 409
    when ``new`` is taken, 422 when it is not a valid name."""
    rt = runtime()
    row = _row(old)
    spec = parse_draft({**row.spec, **(changes or {}), "name": new})
    try:
        rt.catalog.rename_rule(old, spec, actor=principal())
    except NotFound:
        raise not_found(f"rule {old!r}") from None
    except Conflict:
        raise conflict(f"a rule named {new!r} already exists; choose another name") from None
    return spec


def _answer(name: str, status: int) -> tuple[Response, int]:
    rt = runtime()
    row = rt.catalog.get_rule(name)
    assert row is not None
    resp = jsonify(rule_out(row, rule_activity(rt.db)))
    resp.headers["Location"] = url_for("api.get_rule", name=name)
    return resp, status


def _row(name: str) -> Rule:
    row = runtime().catalog.get_rule(name)
    if row is None:
        raise not_found(f"rule {name!r}")
    return row


@operation("GET", "/rules", tag="rules", summary="List rules",
           description="Highest priority first, with when each rule last matched.",
           query=CatalogQuery, responses={200: RuleList})
def list_rules() -> Response:
    q = query(CatalogQuery)
    rt = runtime()
    rows = rt.catalog.list_rules()
    activity = rule_activity(rt.db)
    page = Page([rule_out(r, activity) for r in rows[q.offset:q.offset + q.capped_limit]],
                len(rows), q.capped_limit, q.offset)
    return jsonify(page.as_dict())


@operation("POST", "/rules", tag="rules", summary="Create a rule",
           body_ref="RuleSpec", responses={201: RuleOut}, errors=(400, 409, 422))
def create_rule() -> tuple[Response, int]:
    spec = parse_draft(json_body())
    if runtime().catalog.get_rule(spec.name) is not None:
        raise conflict(f"a rule named {spec.name!r} already exists: choose another name, "
                       f"or PUT /api/v1/rules/{spec.name} to change it")
    _save(spec)
    return _answer(spec.name, 201)


@operation("GET", "/rules/<name>", tag="rules", summary="Get a rule",
           responses={200: RuleOut}, errors=(404,))
def get_rule(name: str) -> Response:
    return jsonify(rule_out(_row(name), rule_activity(runtime().db)))


@operation("PUT", "/rules/<name>", tag="rules", summary="Create or replace a rule",
           description="Answers 201 when the rule was created, 200 when it existed.",
           body_ref="RuleSpec", responses={200: RuleOut, 201: RuleOut}, errors=(400, 422))
def put_rule(name: str) -> tuple[Response, int]:
    spec = parse_draft(json_body(), name=name)
    action = _save(spec)
    return _answer(name, 201 if action == "created" else 200)


@operation("PATCH", "/rules/<name>", tag="rules",
           summary="Rename, enable, disable or reprioritise",
           description="`name` renames the rule: the same rule (its versions, history and "
           "executions follow it), 409 if the name is taken. Enabling or disabling makes no "
           "new version; it is recorded in the rule's history.",
           body=RulePatch, responses={200: RuleOut}, errors=(400, 404, 409, 422))
def patch_rule(name: str) -> tuple[Response, int]:
    patch = body(RulePatch)
    row = _row(name)
    changes = patch.model_dump(exclude_none=True)
    new = changes.pop("name", name)
    if new != name:
        rename(name, new, changes)
        return _answer(new, 200)
    spec = parse_draft({**row.spec, **changes})
    runtime().catalog.save([], [spec], actor=principal())
    return _answer(name, 200)


@operation("DELETE", "/rules/<name>", tag="rules", summary="Delete a rule",
           description="Its revisions are kept, so past executions still show what ran.",
           responses={204: None}, errors=(404,))
def delete_rule(name: str) -> tuple[str, int]:
    if not runtime().catalog.delete_rule(name, actor=principal()):
        raise not_found(f"rule {name!r}")
    return "", 204


@operation("GET", "/rules/<name>/versions", tag="rules", summary="List a rule's versions",
           description="Every stored version, newest first (also of deleted rules), with "
           "who saved it and what changed; `history` adds the switches and deletes.",
           responses={200: RuleRevisionList}, errors=(404,))
def rule_versions(name: str) -> Response:
    catalog = runtime().catalog
    revisions = catalog.revisions(name)
    if not revisions:
        raise not_found(f"rule {name!r}")
    return jsonify(versions_out(revisions, catalog.history(name)))


@operation("POST", "/rules/<name>/versions/<int:version>/restore", tag="rules",
           summary="Restore a version",
           description="Saves that version's document as the rule's newest version (the "
           "rule keeps its name and its on/off switch; a deleted rule is created again).",
           responses={200: RuleOut}, errors=(404, 422))
def restore_version(name: str, version: int) -> tuple[Response, int]:
    restore(name, version)
    return _answer(name, 200)
