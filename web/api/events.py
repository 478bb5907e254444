"""``/api/v1/events``: stored webhooks — list with filters, one with everything that
happened to it, and replay."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, jsonify, request

from engine.errors import Conflict, NotFound
from engine.run.replay import replay_event
from engine.store.outcomes import outcomes
from engine.store.queries import get_event, list_events
from rules.errors import PathError
from web.api.errors import body, conflict, invalid_field, not_found, query
from web.api.registry import operation
from web.api.run_models import EventDetail, EventPage, EventQuery, ReplayIn, ReplayOut
from web.context import runtime


def _utc(ts: datetime | None) -> datetime | None:
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


@operation("GET", "/events", tag="events", summary="List events",
           description="Newest first. `q` searches the raw body; `path` (JSONPath over the "
                       "event document) keeps events where it selects something, equal to "
                       "`value` when given; `outcome` keeps events whose latest round "
                       "ended so (each item has its `outcome`).",
           query=EventQuery, responses={200: EventPage}, errors=(422,))
def events() -> Response:
    q = query(EventQuery)
    try:
        page = list_events(
            runtime().db, source=q.source, status=q.status, since=_utc(q.since),
            until=_utc(q.until), text=q.q, path=q.path, value=q.value,
            limit=q.capped_limit, offset=q.offset, outcome=q.outcome,
        )
    except PathError as exc:
        raise invalid_field("path", f"not a valid JSONPath: {exc}", q.path) from None
    found = outcomes(runtime().db, page.items)
    for item in page.items:
        item["outcome"] = found[item["id"]]
    return jsonify(page.as_dict())


@operation("GET", "/events/<event_id>", tag="events", summary="Get an event",
           description="Payload and headers, every round's match traces, and every "
                       "execution with its steps.",
           responses={200: EventDetail}, errors=(404,))
def event(event_id: str) -> Response:
    found = get_event(runtime().db, event_id)
    if found is None:
        raise not_found(f"event {event_id!r}")
    found["event"]["outcome"] = outcomes(runtime().db, [found["event"]])[event_id]
    return jsonify(found)


@operation("POST", "/events/<event_id>/replay", tag="events", summary="Replay an event",
           description="Runs the event again as a new round (earlier rounds are kept): "
                       "matched with today's rules, or (`rules: then`) the rule versions that "
                       "ran last time. The body is optional. 409 while the event has not "
                       "been matched yet.",
           body=ReplayIn, responses={202: ReplayOut}, errors=(400, 404, 409, 422))
def replay(event_id: str) -> tuple[Response, int]:
    opts = body(ReplayIn) if request.get_data() else ReplayIn()
    try:
        new_round = replay_event(runtime(), event_id, rules=opts.rules)
    except NotFound:
        raise not_found(f"event {event_id!r}") from None
    except Conflict as exc:
        raise conflict(str(exc)) from None
    return jsonify({"event_id": event_id, "round": new_round}), 202
