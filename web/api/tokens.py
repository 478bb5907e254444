"""``/api/v1/tokens``: list, create and revoke API bearer tokens (never answered again
after creation: only a hash is stored). Revocation is effective at the next request."""

from __future__ import annotations

from flask import Response, jsonify

from engine.errors import AccountError
from engine.store.queries import Page
from web.api.errors import body, conflict, invalid_field, not_found, query
from web.api.models import CatalogQuery, TokenCreate, TokenCreated, TokenList
from web.api.registry import operation
from web.context import runtime


@operation("GET", "/tokens", tag="tokens", summary="List API tokens",
           description="Name, first characters, created and last used; never the token.",
           query=CatalogQuery, responses={200: TokenList})
def list_tokens() -> Response:
    q = query(CatalogQuery)
    rows = runtime().accounts.list_tokens()
    items = [{"name": r.name, "prefix": r.prefix, "created_at": r.created_at.isoformat(),
              "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None}
             for r in rows[q.offset:q.offset + q.capped_limit]]
    return jsonify(Page(items, len(rows), q.capped_limit, q.offset).as_dict())


@operation("POST", "/tokens", tag="tokens", summary="Create an API token",
           description="Answers the token once; store it now (only its hash is kept).",
           body=TokenCreate, responses={201: TokenCreated}, errors=(400, 409, 422))
def create_token() -> tuple[Response, int]:
    name = body(TokenCreate).name
    if not name.strip():
        raise invalid_field("name", "a token needs a name", name)
    try:
        token = runtime().accounts.create_token(name)
    except AccountError as exc:
        raise conflict(str(exc)) from None
    return jsonify({"name": name.strip(), "token": token}), 201


@operation("DELETE", "/tokens/<name>", tag="tokens", summary="Revoke an API token",
           description="Requests with it get 401 from the next one on.",
           responses={204: None}, errors=(404,))
def revoke_token(name: str) -> tuple[str, int]:
    if not runtime().accounts.delete_token(name):
        raise not_found(f"token {name!r}")
    return "", 204
