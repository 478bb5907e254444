"""Connections: the list, the create/edit form and deletion (``/connections``)."""

from __future__ import annotations

import typing
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.store import connections as stored
from rules.connection_models import (
    AUTH_TYPES,
    DEFAULT_BASE_URLS,
    ConnectionSpec,
    parse_connection,
)
from rules.errors import RuleValidationError
from web.api.connections import users_of
from web.api.rules import principal
from web.context import runtime
from web.ui import bp

TYPES: tuple[str, ...] = typing.get_args(ConnectionSpec.model_fields["type"].annotation)
AUTH_FIELDS = ("secret", "username", "name", "token_url", "client_id", "scope")
FORM_FIELDS = ("name", "type", "description", "base_url", "auth.type", "headers") + tuple(
    f"auth.{k}" for k in AUTH_FIELDS)


def form_from_spec(spec: dict[str, Any]) -> dict[str, str]:
    """The flat form fields of a stored connection document."""
    auth = spec.get("auth") or {}
    out = {k: "" for k in FORM_FIELDS}
    out.update(name=spec.get("name", ""), type=spec.get("type", "http"),
               description=spec.get("description", ""), base_url=spec.get("base_url") or "")
    out["auth.type"] = auth.get("type", "")
    for key in AUTH_FIELDS:
        out[f"auth.{key}"] = str(auth.get(key) or "")
    out["headers"] = "\n".join(f"{k}: {v}" for k, v in (spec.get("headers") or {}).items())
    return out


def spec_from_form(form: dict[str, str]) -> dict[str, Any]:
    """A connection document from the form; empty fields are left out."""
    def val(key: str) -> str:
        return (form.get(key) or "").strip()

    doc: dict[str, Any] = {"name": val("name"), "type": val("type") or "http"}
    for key in ("description", "base_url"):
        if val(key):
            doc[key] = val(key)
    if val("auth.type"):
        auth: dict[str, Any] = {"type": val("auth.type")}
        wanted = {"bearer": ("secret",), "basic": ("username", "secret"),
                  "header": ("name", "secret"), "query": ("name", "secret"),
                  "oauth2_client_credentials": ("token_url", "client_id", "secret", "scope")}
        for key in wanted.get(auth["type"], AUTH_FIELDS):
            if val(f"auth.{key}"):
                auth[key] = val(f"auth.{key}")
        doc["auth"] = auth
    headers: dict[str, str] = {}
    for line in val("headers").splitlines():
        if line.strip():
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    if headers:
        doc["headers"] = headers
    return doc


def _errors(exc: RuleValidationError) -> tuple[dict[str, list[str]], list[str]]:
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for err in exc.errors:
        key = err.loc if err.loc in FORM_FIELDS else (
            "auth.type" if err.loc == "auth" else
            "headers" if err.loc.startswith("headers") else None)
        if key:
            fields.setdefault(key, []).append(err.message)
        else:
            general.append(err.message if not err.loc else f"{err.loc}: {err.message}")
    return fields, general


@bp.get("/connections")
def connections_list() -> str:
    secrets = runtime().secrets
    rows = []
    for row in runtime().catalog.list_connections():
        spec = parse_connection(row.spec)
        rows.append({"name": row.name, "spec": spec, "url": spec.url,
                     "missing": [n for n in spec.secret_names()
                                 if secrets.problem(n) is not None]})
    return render_template("connections.html", connections=rows)


def _render_form(form: dict[str, str], *, editing: bool, status: int = 200,
                 errors: dict[str, list[str]] | None = None,
                 general: list[str] | None = None) -> tuple[str, int]:
    return render_template(
        "connection_form.html", form=form, editing=editing, errors=errors or {},
        general=general or [], types=TYPES, auth_types=AUTH_TYPES, defaults=DEFAULT_BASE_URLS,
        secret_names=runtime().secrets.names()), status


def _save(form: dict[str, str], *, editing: bool) -> Response | tuple[str, int]:
    try:
        spec = parse_connection(spec_from_form(form))
    except RuleValidationError as exc:
        fields, general = _errors(exc)
        return _render_form(form, editing=editing, status=400, errors=fields, general=general)
    [change] = runtime().catalog.save([], [], connections=[spec], actor=principal())
    flash(f"Connection “{spec.name}” {change.action}.", "success")
    return redirect(url_for("ui.connections_list"))


@bp.route("/connections/new", methods=["GET", "POST"])
def connection_new() -> Any:
    if request.method == "GET":
        return _render_form(form_from_spec({}), editing=False)
    form = request.form.to_dict()
    name = (form.get("name") or "").strip()
    if name and stored.get_row(runtime().db, name) is not None:
        return _render_form(form, editing=False, status=400,
                            errors={"name": [f"a connection “{name}” exists already"]})
    return _save(form, editing=False)


@bp.route("/connections/<name>", methods=["GET", "POST"])
def connection_edit(name: str) -> Any:
    row = stored.get_row(runtime().db, name)
    if row is None:
        abort(404, f"There is no connection “{name}”.")
    if request.method == "GET":
        return _render_form(form_from_spec(dict(row.spec)), editing=True)
    return _save(request.form.to_dict() | {"name": name}, editing=True)


@bp.route("/connections/<name>/delete", methods=["GET", "POST"])
def connection_delete(name: str) -> Any:
    if stored.get_row(runtime().db, name) is None:
        if request.method == "POST":
            flash(f"There is no connection “{name}” (deleted already?).", "error")
            return redirect(url_for("ui.connections_list"))
        abort(404, f"There is no connection “{name}”.")
    users = users_of(name)
    if request.method == "GET":
        return render_template("connection_delete.html", name=name, rules=users)
    if users:
        flash(f"Nothing was deleted: connection “{name}” is used by "
              f"{', '.join(users)}.", "error")
        return redirect(url_for("ui.connection_delete", name=name))
    runtime().catalog.delete_connection(name)
    flash(f"Connection “{name}” deleted.", "success")
    return redirect(url_for("ui.connections_list"))
