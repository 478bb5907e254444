"""``/api/v1/rejections``: webhooks that were refused (400, 401, 413, 415, 429), with
their reason — recorded bounded and expiring by ``engine.store.rejections``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify
from pydantic import Field

from engine.store.queries import Page
from engine.store.rejections import get_rejection, list_rejections, summary
from web.api.errors import not_found, query
from web.api.models import PageOut, PageQuery, Record
from web.api.registry import operation
from web.context import runtime


class RejectionQuery(PageQuery):
    source: str | None = Field(None, description="only this source's rejections")
    since: datetime | None = Field(None, description="ISO 8601; naive times are UTC")


class RejectionOut(Record):
    id: int
    source: str
    received_at: datetime
    status: int = Field(description="the answer: 400, 401, 413, 415 or 429")
    code: str = Field(description="the answer's error code, e.g. verification_failed")
    reason: str = Field(description="the answer's message: why it was refused")
    method: str
    content_type: str
    headers: dict[str, Any] = Field(description="credentials (authorization, cookies, "
                                                "signatures, tokens) are [redacted]")
    query: dict[str, Any]
    body_excerpt: str = Field(description="the first 4 KB of the body (UTF-8, lossy)")
    body_size: int
    remote_addr: str | None


class RejectionPage(PageOut):
    items: list[RejectionOut]
    counted_last_hour: int | None = Field(
        None, description="with `source`: every rejection of the last hour, including "
                          "those only counted (past the per-minute sample)")


def _utc(ts: datetime | None) -> datetime | None:
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


@operation("GET", "/rejections", tag="rejections", summary="List rejected webhooks",
           description="Newest first. Rejections are kept 7 days (at most 1,000 per source, "
                       "10,000 in all); past 20 per source per minute they are counted, "
                       "not recorded.",
           query=RejectionQuery, responses={200: RejectionPage}, errors=(422,))
def rejections() -> Response:
    q = query(RejectionQuery)
    rt = runtime()
    items, total = list_rejections(rt.db, source=q.source, since=_utc(q.since),
                                   limit=q.capped_limit, offset=q.offset)
    out = Page(items, total, q.capped_limit, q.offset).as_dict()
    if q.source:
        try:
            conn = rt.redis
        except Exception:
            conn = None
        out["counted_last_hour"] = summary(rt.db, q.source, redis_conn=conn).total
    return jsonify(out)


@operation("GET", "/rejections/<int:rejection_id>", tag="rejections",
           summary="Get a rejected webhook", responses={200: RejectionOut}, errors=(404,))
def rejection(rejection_id: int) -> Response:
    found = get_rejection(runtime().db, rejection_id)
    if found is None:
        raise not_found(f"rejection {rejection_id}")
    return jsonify(found)
