"""Secrets: names and when they changed; set or replace a value; delete. Values are
write-only: no page ever renders one."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlmodel import Session, select
from werkzeug.wrappers import Response

from engine.errors import InvalidSecret
from engine.store.models import Secret
from web.context import runtime
from web.ui import bp


def secret_rows() -> list[dict[str, Any]]:
    """Name, created and updated time of every secret (SecretStore lists names only)."""
    with Session(runtime().db) as s:
        rows = s.exec(select(Secret.name, Secret.created_at, Secret.updated_at)
                      .order_by(Secret.name)).all()
    return [{"name": n, "created_at": c.isoformat(), "updated_at": u.isoformat()}
            for n, c, u in rows]


def _page(status: int = 200, *, name: str = "", errors: dict[str, list[str]] | None = None
          ) -> tuple[str, int]:
    return render_template("secrets.html", secrets=secret_rows(), name=name,
                           errors=errors or {}), status


@bp.get("/secrets")
def secrets_page() -> Any:
    return _page(name=request.args.get("name", ""))


@bp.post("/secrets")
def secret_set() -> Any:
    name = (request.form.get("name") or "").strip()
    value = request.form.get("value") or ""
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Give the secret a name."]
    if not value.strip():
        errors["value"] = ["Type the value to store (not only spaces)."]
    if not errors:
        rt = runtime()
        existed = name in rt.secrets.names()
        try:
            rt.secrets.set(name, value)
        except InvalidSecret as exc:
            errors[exc.field] = [str(exc)]
        else:
            flash(f"Secret {name} {'replaced' if existed else 'stored'}.", "success")
            return redirect(url_for("ui.secrets_page"))
    return _page(400, name=name, errors=errors)


@bp.post("/secrets/<name>/delete")
def secret_delete(name: str) -> Response:
    if runtime().secrets.delete(name):
        flash(f"Secret {name} deleted. Rules and sources that name it will fail until it "
              "is set again.", "success")
    else:
        flash(f"There is no secret {name}.", "error")
    return redirect(url_for("ui.secrets_page"))
