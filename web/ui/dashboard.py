"""The dashboard: events and failures over the last 24 h, statuses, queue, failures, and
the destinations that are paused, probing, slowed or failing."""

from __future__ import annotations

from typing import Any

from flask import render_template

from engine.broker import inbox
from engine.run.admission import overview
from engine.store import queries
from engine.store.models import EventStatus, ExecutionStatus
from web.context import runtime
from web.ui import bp
from web.ui.charts import status_bar, time_chart

HOURS = 24
BUCKETS = 48
RECENT_FAILURES = 8
EVENT_ORDER = tuple(s.value for s in EventStatus)
EXECUTION_ORDER = ("succeeded", "running", "waiting", "pending", "failed")


def queue_depth() -> dict[str, Any]:
    """Jobs queued and scheduled (retries, delays); ``error`` when Redis is unreachable."""
    rt = runtime()
    try:
        return {**inbox.queue_depth(rt.queue), "error": None}
    except Exception as exc:  # any Redis/config failure is shown, not raised
        return {"queued": None, "scheduled": None,
                "error": f"Redis unreachable ({type(exc).__name__})"}


def live_context() -> dict[str, Any]:
    rt = runtime()
    series = queries.timeseries(rt.db, hours=HOURS, buckets=BUCKETS)
    counts = queries.counts(rt.db)
    failures = queries.list_executions(rt.db, status=ExecutionStatus.failed.value,
                                       limit=RECENT_FAILURES)
    return {
        "events_chart": time_chart(series["labels"], series["events"], tone="events",
                                   unit="events"),
        "failures_chart": time_chart(series["labels"], series["failures"], tone="failures",
                                     unit="failed executions"),
        "event_status": status_bar(counts["events"], EVENT_ORDER),
        "execution_status": status_bar(counts["executions"], EXECUTION_ORDER),
        "queue": queue_depth(),
        "failures": failures,
        "destinations": [d for d in overview(rt) if d["state"] not in ("ok", None)],
    }


@bp.get("/")
def dashboard() -> str:
    return render_template("dashboard.html", **live_context())


@bp.get("/dashboard/live")
def dashboard_live() -> str:
    """The charts and numbers alone; the dashboard polls this every 10 s with htmx."""
    return render_template("_dashboard_live.html", **live_context())
