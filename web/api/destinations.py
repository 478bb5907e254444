"""``/api/v1/destinations``: where outgoing calls go, their limits and their state."""

from __future__ import annotations

from flask import Response, jsonify

from engine.run.admission import overview, resume
from web.api.errors import body, not_found
from web.api.models import DestinationList, DestinationResume
from web.api.registry import operation
from web.context import runtime


@operation("GET", "/destinations", tag="destinations", summary="List destinations",
           description="Every configured destination and every one that fails or is "
                       "held, with its limits and state (ok, failing, paused, probing, "
                       "slowed; null when Redis is unreachable).",
           responses={200: DestinationList})
def list_destinations() -> Response:
    items = overview(runtime())
    return jsonify({"items": items, "total": len(items)})


@operation("POST", "/destinations/resume", tag="destinations",
           summary="Resume a paused destination",
           description="Closes its circuit breaker and drops any hold; its waiting steps "
                       "run at their next check.",
           body=DestinationResume, responses={204: None}, errors=(404, 422))
def resume_destination() -> tuple[str, int]:
    destination = body(DestinationResume).destination
    if not resume(runtime(), destination):
        raise not_found(f"a pause or hold of {destination!r}")
    return "", 204
