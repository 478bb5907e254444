"""``/api/v1/sources``: webhook endpoints, CRUD by slug."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request, url_for

from engine.errors import Conflict
from engine.store.models import Source
from engine.store.queries import Page
from rules.errors import RuleValidationError
from rules.schema import SourceSpec, parse_source
from web.api.errors import conflict, from_rule_errors, invalid_field, json_body, not_found, query
from web.api.models import CatalogQuery, SourceDeleteQuery, SourceList, SourceOut
from web.api.registry import operation
from web.context import runtime


def source_out(row: Source) -> dict[str, Any]:
    return {
        **row.spec,
        "ingest_url": f"{request.host_url}hooks/{row.slug}",
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _parse(data: Any, slug: str | None = None) -> SourceSpec:
    if slug is not None and isinstance(data, dict):
        given = data.setdefault("slug", slug)
        if given != slug:
            raise invalid_field("slug", f"must be {slug!r} (the slug in the URL) or absent",
                                given)
    try:
        return parse_source(data)
    except RuleValidationError as exc:
        raise from_rule_errors(exc) from None


def _answer(slug: str, status: int) -> tuple[Response, int]:
    row = runtime().catalog.get_source(slug)
    assert row is not None
    resp = jsonify(source_out(row))
    resp.headers["Location"] = url_for("api.get_source", slug=slug)
    return resp, status


@operation("GET", "/sources", tag="sources", summary="List sources",
           query=CatalogQuery, responses={200: SourceList})
def list_sources() -> Response:
    q = query(CatalogQuery)
    rows = runtime().catalog.list_sources()
    page = Page([source_out(r) for r in rows[q.offset:q.offset + q.capped_limit]],
                len(rows), q.capped_limit, q.offset)
    return jsonify(page.as_dict())


@operation("POST", "/sources", tag="sources", summary="Create a source",
           body_ref="SourceSpec", responses={201: SourceOut}, errors=(400, 409, 422))
def create_source() -> tuple[Response, int]:
    spec = _parse(json_body())
    catalog = runtime().catalog
    if catalog.get_source(spec.slug) is not None:
        raise conflict(f"a source named {spec.slug!r} already exists (PUT to change it)")
    catalog.save([spec], [])
    return _answer(spec.slug, 201)


@operation("GET", "/sources/<slug>", tag="sources", summary="Get a source",
           responses={200: SourceOut}, errors=(404,))
def get_source(slug: str) -> Response:
    row = runtime().catalog.get_source(slug)
    if row is None:
        raise not_found(f"source {slug!r}")
    return jsonify(source_out(row))


@operation("PUT", "/sources/<slug>", tag="sources", summary="Create or replace a source",
           description="Answers 201 when the source was created, 200 when it existed.",
           body_ref="SourceSpec", responses={200: SourceOut, 201: SourceOut},
           errors=(400, 422))
def put_source(slug: str) -> tuple[Response, int]:
    spec = _parse(json_body(), slug)
    [change] = runtime().catalog.save([spec], [])
    return _answer(slug, 201 if change.action == "created" else 200)


@operation("DELETE", "/sources/<slug>", tag="sources", summary="Delete a source",
           description="Refused (409) while rules use the source, unless `?rules=delete`: "
           "then those rules are deleted with it (their versions and executions are kept). "
           "Events already received are kept.",
           query=SourceDeleteQuery, responses={204: None}, errors=(404, 409, 422))
def delete_source(slug: str) -> tuple[str, int]:
    q = query(SourceDeleteQuery)
    catalog = runtime().catalog
    if catalog.get_source(slug) is None:
        raise not_found(f"source {slug!r}")
    users = [r.name for r in catalog.list_rules() if r.source == slug]
    if users and q.rules != "delete":
        raise conflict(f"source {slug!r} is used by rule(s) {', '.join(sorted(users))}; "
                       "delete or move them first, or send ?rules=delete to delete them "
                       "with it")
    try:
        catalog.delete_source(slug, with_rules=q.rules == "delete", actor=g.get("principal"))
    except Conflict as exc:  # a rule was added meanwhile
        raise conflict(str(exc)) from None
    return "", 204
