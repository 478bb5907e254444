"""One table of API operations: the Flask routes and the OpenAPI paths are both built
from it, so the document cannot drift from what is served.

    @operation("GET", "/sources/<slug>", tag="sources", summary="Get a source",
               responses={200: SourceOut}, errors=(404,))
    def get_source(slug: str) -> ...

registers ``GET /api/v1/sources/<slug>`` on the API blueprint and records an
``Operation`` that ``web.api.openapi`` turns into a path item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint
from pydantic import BaseModel

PREFIX = "/api/v1"

bp = Blueprint("api", __name__, url_prefix=PREFIX)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    """One method on one route, described for the OpenAPI document."""

    method: str
    rule: str  # Flask rule below PREFIX, e.g. "/sources/<slug>"
    endpoint: str
    tag: str
    summary: str
    description: str = ""
    body: type[BaseModel] | None = None
    body_ref: str | None = None  # name of a component schema, for bodies validated elsewhere
    query: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    errors: tuple[int, ...] = ()


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    rule: str,
    *,
    tag: str,
    summary: str,
    description: str = "",
    body: type[BaseModel] | None = None,
    body_ref: str | None = None,
    query: type[BaseModel] | None = None,
    responses: dict[int, type[BaseModel] | None],
    errors: tuple[int, ...] = (),
) -> Callable[[F], F]:
    """Register the view on the API blueprint and describe it in OPERATIONS."""

    def decorate(view: F) -> F:
        bp.add_url_rule(rule, view_func=view, methods=[method])
        OPERATIONS.append(Operation(
            method=method, rule=rule, endpoint=f"{bp.name}.{view.__name__}", tag=tag,
            summary=summary, description=description or (view.__doc__ or "").strip(),
            body=body, body_ref=body_ref, query=query, responses=responses, errors=errors,
        ))
        return view

    return decorate
