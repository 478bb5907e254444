"""``/api/v1/rules``: rules, CRUD by name, the enable/priority switch, and revisions."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for

from engine.store.models import Rule
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


def _save(spec: RuleSpec) -> str:
    rt = runtime()
    try:
        check_references(rt.catalog, [], [spec])
    except RuleValidationError as exc:
        raise from_rule_errors(exc) from None
    [change] = rt.catalog.save([], [spec])
    return change.action


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
        raise conflict(f"a rule named {spec.name!r} already exists (PUT to change it)")
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


@operation("PATCH", "/rules/<name>", tag="rules", summary="Enable, disable or reprioritise",
           body=RulePatch, responses={200: RuleOut}, errors=(400, 404, 422))
def patch_rule(name: str) -> tuple[Response, int]:
    patch = body(RulePatch)
    row = _row(name)
    spec = parse_draft({**row.spec, **patch.model_dump(exclude_none=True)})
    runtime().catalog.save([], [spec])
    return _answer(name, 200)


@operation("DELETE", "/rules/<name>", tag="rules", summary="Delete a rule",
           description="Its revisions are kept, so past executions still show what ran.",
           responses={204: None}, errors=(404,))
def delete_rule(name: str) -> tuple[str, int]:
    if not runtime().catalog.delete_rule(name):
        raise not_found(f"rule {name!r}")
    return "", 204


@operation("GET", "/rules/<name>/versions", tag="rules", summary="List a rule's revisions",
           description="Every stored version, newest first (also of deleted rules).",
           responses={200: RuleRevisionList}, errors=(404,))
def rule_versions(name: str) -> Response:
    revisions = runtime().catalog.revisions(name)
    if not revisions:
        raise not_found(f"rule {name!r}")
    return jsonify({"items": [{"version": r.version, "created_at": r.created_at.isoformat(),
                               "spec": r.spec} for r in revisions]})
