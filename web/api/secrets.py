"""``/api/v1/secrets``: names only; values are write-only and never answered."""

from __future__ import annotations

import re

from flask import Response, jsonify

from engine.errors import InvalidSecret
from engine.store.queries import Page
from engine.store.secrets import NAME_PATTERN
from web.api.errors import body, invalid_field, not_found, query
from web.api.models import CatalogQuery, SecretList, SecretValue
from web.api.registry import operation
from web.context import runtime


@operation("GET", "/secrets", tag="secrets", summary="List secret names",
           query=CatalogQuery, responses={200: SecretList})
def list_secrets() -> Response:
    q = query(CatalogQuery)
    entries = runtime().secrets.entries()
    items = [{"name": n, "created_at": c.isoformat(), "updated_at": u.isoformat()}
             for n, c, u in entries[q.offset:q.offset + q.capped_limit]]
    return jsonify(Page(items, len(entries), q.capped_limit, q.offset).as_dict())


@operation("PUT", "/secrets/<name>", tag="secrets", summary="Set a secret",
           description="Creates or replaces the value; it is encrypted at rest and never "
                       "answered by any route. An empty or whitespace-only value is "
                       "refused (422 on `value`).",
           body=SecretValue, responses={204: None}, errors=(400, 422))
def put_secret(name: str) -> tuple[str, int]:
    if not re.match(NAME_PATTERN, name):
        raise invalid_field("name", "must be letters, digits and _, starting with a letter "
                                    "or _", name)
    try:
        runtime().secrets.set(name, body(SecretValue).value)
    except InvalidSecret as exc:
        raise invalid_field(exc.field, str(exc)) from None
    return "", 204


@operation("DELETE", "/secrets/<name>", tag="secrets", summary="Delete a secret",
           responses={204: None}, errors=(404,))
def delete_secret(name: str) -> tuple[str, int]:
    if not runtime().secrets.delete(name):
        raise not_found(f"secret {name!r}")
    return "", 204
