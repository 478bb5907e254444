"""Events: the filtered list, one event with its match trace and step timelines, and
the two things people do to runs: replay an event, retry a failed execution."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response

from engine.errors import Conflict, HookwiseError, NotFound
from engine.ids import utcnow
from engine.run.control import (
    batch_progress,
    cancel_execution,
    failed_matching,
    retry_many,
    retry_now,
)
from engine.run.replay import replay_event, retry_execution
from engine.store import queries
from engine.store.models import EventStatus, Execution
from engine.store.outcomes import LABELS, OUTCOMES, outcomes
from rules.errors import PathError
from web.context import runtime
from web.ui import bp, is_htmx

PAGE_SIZE = 25
SINCE = {"1h": ("Last hour", timedelta(hours=1)), "24h": ("Last 24 hours", timedelta(days=1)),
         "7d": ("Last 7 days", timedelta(days=7)), "30d": ("Last 30 days", timedelta(days=30))}
FILTER_KEYS = ("source", "status", "outcome", "since", "q", "path", "value")


def execution_summary(event_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per event: how many executions are in each status (every round)."""
    if not event_ids:
        return {}
    with Session(runtime().db) as s:
        rows = s.exec(select(Execution.event_id, Execution.status)
                      .where(col(Execution.event_id).in_(event_ids))).all()
    out: dict[str, Counter[str]] = {}
    for event_id, status in rows:
        out.setdefault(event_id, Counter())[str(status)] += 1
    return {k: dict(v) for k, v in out.items()}


def _filters(args: Any = None) -> dict[str, str]:
    src = request.args if args is None else args
    f = {k: (src.get(k) or "").strip() for k in FILTER_KEYS}
    if f["outcome"] not in OUTCOMES:
        f["outcome"] = ""
    return f


def _event_filters(f: dict[str, str]) -> dict[str, Any]:
    """The filters as ``queries.list_events`` keywords."""
    return {"source": f["source"] or None, "status": f["status"] or None,
            "since": utcnow() - SINCE[f["since"]][1] if f["since"] in SINCE else None,
            "text": f["q"] or None, "path": f["path"] or None,
            "value": f["value"] if f["path"] and f["value"] else None}


def _offset() -> int:
    try:
        return max(0, int(request.args.get("offset", 0)))
    except ValueError:
        return 0


@bp.get("/events")
def events_list() -> str | Response:
    rt = runtime()
    f = _filters()
    if f["status"] == "rejected":  # refused requests are not events: their own list
        return redirect(url_for(".rejections_list", **{k: v for k, v in (
            ("source", f["source"]), ("since", f["since"])) if v}))
    offset = _offset()
    errors: dict[str, list[str]] = {}
    try:
        page = queries.list_events(rt.db, **_event_filters(f), outcome=f["outcome"] or None,
                                   limit=PAGE_SIZE, offset=offset)
    except PathError as exc:
        errors["path"] = [str(exc)]
        page = queries.Page([], 0, PAGE_SIZE, 0)
    runs = execution_summary([e["id"] for e in page.items])
    query = {k: v for k, v in f.items() if v}
    ctx = {"page": page, "runs": runs, "filters": f, "errors": errors, "query": query,
           "filtered": bool(query), "outcomes": outcomes(rt.db, page.items),
           "outcome_labels": LABELS}
    if is_htmx() and request.headers.get("HX-Target") == "event-list":
        return render_template("_events_list.html", **ctx)
    sources = [s.slug for s in rt.catalog.list_sources()]
    if f["source"] and f["source"] not in sources:
        sources.append(f["source"])
    return render_template("events.html", sources=sources,
                           statuses=[s.value for s in EventStatus] + ["rejected"],
                           since_options=SINCE, **ctx)


@bp.post("/events/retry-failed")
def events_retry_failed() -> str | Response:
    """Retry every failed execution of the events the list's filters select; answers
    the progress fragment (htmx) or, without htmx, back to the list with a message."""
    rt = runtime()
    f = _filters(request.form)
    query = {k: v for k, v in f.items() if v}
    try:
        ids = failed_matching(rt, **_event_filters(f))
    except PathError as exc:
        flash(f"Nothing retried: the JSONPath filter is not valid ({exc}).", "error")
        return redirect(url_for("ui.events_list", **query))
    if not ids:
        message = "No failed executions among these events: nothing to retry."
        if is_htmx():
            return render_template("_bulk_retry.html", progress=None, message=message)
        flash(message, "info")
        return redirect(url_for("ui.events_list", **query))
    result = retry_many(rt, ids)
    progress = batch_progress(rt, result.batch) or {"batch": result.batch, "total": 0}
    if is_htmx():
        return render_template("_bulk_retry.html", progress=progress, skipped=result.skipped)
    flash(f"Retrying {len(result.retried)} failed execution"
          f"{'s' if len(result.retried) != 1 else ''} from their failed steps.", "success")
    return redirect(url_for("ui.events_list", **query))


@bp.get("/events/retry-failed/<batch>")
def events_retry_progress(batch: str) -> str:
    progress = batch_progress(runtime(), batch)
    if progress is None:
        abort(404, "This bulk retry is not known (batches are kept a day).")
    return render_template("_bulk_retry.html", progress=progress, skipped=[])


def _rounds(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Match traces and executions grouped by round, newest round first; in a round,
    matched rules come first."""
    by_round: dict[int, dict[str, Any]] = {}
    for m in data["matches"]:
        by_round.setdefault(m["match_round"], {"traces": [], "executions": []})["traces"].append(m)
    for ex in data["executions"]:
        by_round.setdefault(ex["match_round"], {"traces": [], "executions": []})[
            "executions"].append(ex)
    out = []
    for number in sorted(by_round, reverse=True):
        r = by_round[number]
        r["traces"].sort(key=lambda t: not t["matched"])
        out.append({"number": number, "matched": sum(t["matched"] for t in r["traces"]), **r})
    return out


@bp.get("/events/<event_id>")
def event_page(event_id: str) -> str:
    data = queries.get_event(runtime().db, event_id)
    if data is None:
        abort(404, f"There is no event {event_id}.")
    event = data["event"]
    outcome = outcomes(runtime().db, [event])[event["id"]]
    template = "_event_live.html" if is_htmx() and \
        request.headers.get("HX-Target") == "event-live" else "event.html"
    return render_template(template, event=event, rounds=_rounds(data),
                           executions=data["executions"], outcome=outcome,
                           outcome_labels=LABELS)


@bp.post("/events/<event_id>/replay")
def event_replay(event_id: str) -> Response:
    try:
        new_round = replay_event(runtime(), event_id)
    except NotFound:
        abort(404, f"There is no event {event_id}.")
    except Conflict as exc:
        flash(f"Not replayed: {exc}.", "error")
    except HookwiseError as exc:  # e.g. Redis down: the sweeper queues it later
        flash(f"Replay recorded, but it could not be queued yet: {exc}", "warning")
    else:
        flash(f"Replay queued as round {new_round}: the event is matched again with "
              "today's rules.", "success")
    return redirect(url_for("ui.event_page", event_id=event_id))


@bp.post("/executions/<execution_id>/retry")
def execution_retry(execution_id: str) -> Response:
    rt = runtime()
    ex = queries.get_execution(rt.db, execution_id)
    if ex is None:
        abort(404, f"There is no execution {execution_id}.")
    try:
        retry_execution(rt, execution_id)
    except Conflict as exc:
        flash(f"Not retried: {exc}.", "error")
    except HookwiseError as exc:
        flash(f"Retry recorded, but it could not be queued yet: {exc}", "warning")
    else:
        flash(f"Retrying “{ex['rule_name']}” from its failed step; finished steps are kept.",
              "success")
    return redirect(url_for("ui.event_page", event_id=ex["event_id"]) + f"#{execution_id}")


@bp.post("/executions/<execution_id>/retry-now")
def execution_retry_now(execution_id: str) -> Response:
    rt = runtime()
    ex = queries.get_execution(rt.db, execution_id)
    if ex is None:
        abort(404, f"There is no execution {execution_id}.")
    try:
        step_id = retry_now(rt, execution_id)
    except Conflict as exc:
        flash(f"Not retried: {exc}.", "error")
    except HookwiseError as exc:
        flash(f"The step is due now, but it could not be queued yet: {exc}", "warning")
    else:
        flash(f"Step “{step_id}” of “{ex['rule_name']}” runs now instead of at its "
              "scheduled time.", "success")
    return redirect(url_for("ui.event_page", event_id=ex["event_id"]) + f"#{execution_id}")


@bp.post("/executions/<execution_id>/cancel")
def execution_cancel(execution_id: str) -> Response:
    rt = runtime()
    ex = queries.get_execution(rt.db, execution_id)
    if ex is None:
        abort(404, f"There is no execution {execution_id}.")
    user = getattr(g, "user", None)
    try:
        cancel_execution(rt, execution_id, by=getattr(user, "email", None))
    except Conflict as exc:
        flash(f"Not cancelled: {exc}.", "error")
    else:
        flash(f"“{ex['rule_name']}” cancelled: it will not try again. "
              "Retry it from its failed step to run it after all.", "success")
    return redirect(url_for("ui.event_page", event_id=ex["event_id"]) + f"#{execution_id}")


@bp.app_template_filter("short_id")
def short_id(value: str | None) -> str:
    """``evt_…c9d0e1f2``: the random tail that tells ids apart (their heads are the time,
    the same for events received together)."""
    text = str(value or "")
    prefix, sep, rest = text.partition("_")
    if not sep or len(rest) <= 10:
        return text
    return f"{prefix}_…{rest[-8:]}"


@bp.app_template_filter("id_parts")
def id_parts(value: str | None) -> Markup:
    """The whole id with its time head muted and its random tail stressed."""
    text = str(value or "")
    prefix, sep, rest = text.partition("_")
    if not sep or len(rest) <= 12:
        return Markup("{}").format(text)
    return Markup('<span class="id-head">{}_{}</span><span class="id-tail">{}</span>').format(
        prefix, rest[:12], rest[12:])
