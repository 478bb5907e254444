"""``/api/v1/connections``: named base URLs with auth and default headers, CRUD by name.

A connection names its secrets; their values are never read or answered here (each
answer says which of its secrets are not set yet).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, g, jsonify, url_for
from pydantic import Field

from engine.store import connections as stored
from engine.store.models import Connection, Rule
from engine.store.queries import Page
from rules.connection_models import ConnectionSpec, parse_connection
from rules.errors import RuleValidationError
from web.api.errors import conflict, from_rule_errors, invalid_field, json_body, not_found, query
from web.api.models import CatalogQuery, PageOut
from web.api.registry import operation
from web.context import runtime


class ConnectionOut(ConnectionSpec):
    """A connection document, plus which of its secrets are not set."""

    missing_secrets: list[str] = Field(
        description="secret names the connection uses that are not stored yet")
    created_at: datetime
    updated_at: datetime


class ConnectionList(PageOut):
    items: list[ConnectionOut]


def connection_out(row: Connection) -> dict[str, Any]:
    spec = parse_connection(row.spec)
    secrets = runtime().secrets
    return {
        **row.spec,
        "missing_secrets": [n for n in spec.secret_names() if secrets.problem(n) is not None],
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _parse(data: Any, name: str | None = None) -> ConnectionSpec:
    if name is not None and isinstance(data, dict):
        given = data.setdefault("name", name)
        if given != name:
            raise invalid_field("name", f"must be {name!r} (the name in the URL) or absent",
                                given)
    try:
        return parse_connection(data)
    except RuleValidationError as exc:
        raise from_rule_errors(exc) from None


def _answer(name: str, status: int) -> tuple[Response, int]:
    row = stored.get_row(runtime().db, name)
    assert row is not None
    resp = jsonify(connection_out(row))
    resp.headers["Location"] = url_for("api.get_connection", name=name)
    return resp, status


def users_of(name: str) -> list[str]:
    """Rules with a webhook step (at any depth) through connection ``name``."""
    def uses(steps: Any) -> bool:
        for step in steps if isinstance(steps, list) else []:
            if not isinstance(step, dict):
                continue
            if step.get("type") == "webhook" and step.get("connection") == name:
                return True
            nested = [step.get("steps"), step.get("else")]
            nested += [c.get("steps") for c in step.get("cases") or [] if isinstance(c, dict)]
            if any(uses(n) for n in nested):
                return True
        return False

    rules: list[Rule] = runtime().catalog.list_rules()
    return sorted(r.name for r in rules if uses(r.spec.get("actions")))


@operation("GET", "/connections", tag="connections", summary="List connections",
           query=CatalogQuery, responses={200: ConnectionList})
def list_connections() -> Response:
    q = query(CatalogQuery)
    rows = runtime().catalog.list_connections()
    page = Page([connection_out(r) for r in rows[q.offset:q.offset + q.capped_limit]],
                len(rows), q.capped_limit, q.offset)
    return jsonify(page.as_dict())


@operation("POST", "/connections", tag="connections", summary="Create a connection",
           body=ConnectionSpec, responses={201: ConnectionOut}, errors=(400, 409, 422))
def create_connection() -> tuple[Response, int]:
    spec = _parse(json_body())
    rt = runtime()
    if stored.get_row(rt.db, spec.name) is not None:
        raise conflict(f"a connection named {spec.name!r} already exists (PUT to change it)")
    rt.catalog.save([], [], connections=[spec], actor=g.get("principal"))
    return _answer(spec.name, 201)


@operation("GET", "/connections/<name>", tag="connections", summary="Get a connection",
           responses={200: ConnectionOut}, errors=(404,))
def get_connection(name: str) -> Response:
    row = stored.get_row(runtime().db, name)
    if row is None:
        raise not_found(f"connection {name!r}")
    return jsonify(connection_out(row))


@operation("PUT", "/connections/<name>", tag="connections",
           summary="Create or replace a connection",
           description="Answers 201 when the connection was created, 200 when it existed.",
           body=ConnectionSpec, responses={200: ConnectionOut, 201: ConnectionOut},
           errors=(400, 422))
def put_connection(name: str) -> tuple[Response, int]:
    spec = _parse(json_body(), name)
    [change] = runtime().catalog.save([], [], connections=[spec], actor=g.get("principal"))
    return _answer(name, 201 if change.action == "created" else 200)


@operation("DELETE", "/connections/<name>", tag="connections", summary="Delete a connection",
           description="Refused (409) while a rule's webhook step uses it.",
           responses={204: None}, errors=(404, 409))
def delete_connection(name: str) -> tuple[str, int]:
    rt = runtime()
    if stored.get_row(rt.db, name) is None:
        raise not_found(f"connection {name!r}")
    users = users_of(name)
    if users:
        raise conflict(f"connection {name!r} is used by rule(s) {', '.join(users)}; change "
                       "or delete them first")
    rt.catalog.delete_connection(name)
    return "", 204
