"""API tokens: name, first characters, created and last used; create one (shown once,
on the answer to the form, never again); revoke one (effective at the next request)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.errors import AccountError
from web.context import runtime
from web.ui import bp


def _page(status: int = 200, *, name: str = "", created: str | None = None,
          errors: dict[str, list[str]] | None = None) -> tuple[str, int]:
    rows = runtime().accounts.list_tokens()
    return render_template("tokens.html", tokens=rows, name=name, created=created,
                           errors=errors or {}), status


@bp.get("/tokens")
def tokens_page() -> Any:
    return _page()


@bp.post("/tokens")
def token_create() -> Any:
    name = (request.form.get("name") or "").strip()
    if not name:
        return _page(400, errors={"name": ["Give the token a name (who or what uses it)."]})
    try:
        token = runtime().accounts.create_token(name)
    except AccountError as exc:
        return _page(400, name=name, errors={"name": [str(exc)]})
    # answered in this page only: never flashed (the flash would sit in the session)
    return _page(201, created=token, name=name)


@bp.post("/tokens/<name>/revoke")
def token_revoke(name: str) -> Response:
    if runtime().accounts.delete_token(name):
        flash(f"Token {name} revoked: requests with it are refused from now on.", "success")
    else:
        flash(f"There is no token {name}.", "error")
    return redirect(url_for("ui.tokens_page"))
