"""Rejected webhooks: the list (filter by source and time), and the one-line summary the
events list and a source's page show ("12 rejected in the last hour: signature
mismatch"), through the template global ``rejected_summary``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template, request

from engine.ids import utcnow
from engine.store.rejections import Summary, list_rejections, summary
from web.context import runtime
from web.ui import bp

PAGE_SIZE = 25
SINCE = {"1h": ("Last hour", timedelta(hours=1)), "24h": ("Last 24 hours", timedelta(days=1)),
         "7d": ("Last 7 days", timedelta(days=7))}


def _offset() -> int:
    try:
        return max(0, int(request.args.get("offset", 0)))
    except ValueError:
        return 0


@bp.get("/rejections")
def rejections_list() -> str:
    rt = runtime()
    source = (request.args.get("source") or "").strip()
    since_key = (request.args.get("since") or "").strip()
    since = utcnow() - SINCE[since_key][1] if since_key in SINCE else None
    offset = _offset()
    items, total = list_rejections(rt.db, source=source or None, since=since,
                                   limit=PAGE_SIZE, offset=offset)
    sources = [s.slug for s in rt.catalog.list_sources()]
    if source and source not in sources:
        sources.append(source)
    query = {k: v for k, v in {"source": source, "since": since_key}.items() if v}
    return render_template(
        "rejections.html", items=items, total=total, offset=offset, limit=PAGE_SIZE,
        sources=sources, source=source, since=since_key, since_options=SINCE, query=query,
        summary=rejected_summary(source or None))


@bp.app_template_global()
def rejected_summary(source: str | None = None) -> Summary | None:
    """Rejections of the last hour (of ``source``, or all); None when there were none
    or they cannot be read (a page never fails for it)."""
    rt = runtime()
    try:
        try:
            conn: Any = rt.redis
        except Exception:
            conn = None
        found = summary(rt.db, source, redis_conn=conn)
    except Exception:
        return None
    return found if found.total else None
