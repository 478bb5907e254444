"""An event's *outcome*: the worst of what happened to it in its latest round.

``failed`` (matching failed, or an execution failed) is worse than ``waiting`` (an
execution is still open: pending, running or waiting for a retry or a delay), which is
worse than ``succeeded`` (every execution succeeded); ``no_match`` is an event that no
rule matched, ``pending`` one not matched yet. The events list shows it as the event's
badge and filters by it (``GET /api/v1/events?outcome=``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, exists, not_, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from engine.store.models import Event, EventStatus, Execution, ExecutionStatus

OUTCOMES = ("failed", "waiting", "succeeded", "no_match", "pending")
OPEN = (ExecutionStatus.pending, ExecutionStatus.running, ExecutionStatus.waiting)
LABELS = {"failed": "failed", "waiting": "waiting", "succeeded": "succeeded",
          "no_match": "no match", "pending": "pending"}


def outcome_of(event_status: str, statuses: Iterable[str]) -> str:
    """The outcome of an event with ``event_status`` whose latest round's executions
    have ``statuses``."""
    if event_status == EventStatus.pending:
        return "pending"
    if event_status == EventStatus.failed:
        return "failed"
    found = {str(s) for s in statuses}
    if not found:
        return "no_match"
    if ExecutionStatus.failed in found:
        return "failed"
    if found & {s.value for s in OPEN}:
        return "waiting"
    return "succeeded"


def _latest_with(statuses: Iterable[ExecutionStatus] | None) -> Any:
    cond = and_(col(Execution.event_id) == col(Event.id),
                col(Execution.match_round) == col(Event.match_round))
    if statuses is not None:
        cond = and_(cond, col(Execution.status).in_([s.value for s in statuses]))
    return exists(select(col(Execution.id)).where(cond))


def outcome_clause(outcome: str) -> Any:
    """A WHERE clause over ``events`` keeping events with ``outcome``; ValueError for a
    name not in OUTCOMES."""
    processed = col(Event.status) == EventStatus.processed.value
    failed = _latest_with([ExecutionStatus.failed])
    open_ = _latest_with(OPEN)
    if outcome == "pending":
        return col(Event.status) == EventStatus.pending.value
    if outcome == "failed":
        return or_(col(Event.status) == EventStatus.failed.value, and_(processed, failed))
    if outcome == "waiting":
        return and_(processed, not_(failed), open_)
    if outcome == "succeeded":
        return and_(processed, not_(failed), not_(open_),
                    _latest_with([ExecutionStatus.succeeded]))
    if outcome == "no_match":
        return and_(processed, not_(_latest_with(None)))
    raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")


def outcomes(db: Engine, events: list[dict[str, Any]]) -> dict[str, str]:
    """Event id → outcome for event summaries (``id``, ``status``, ``match_round``)."""
    if not events:
        return {}
    rounds = {e["id"]: e["match_round"] for e in events}
    with Session(db) as s:
        rows = s.exec(select(col(Execution.event_id), col(Execution.match_round),  # type: ignore[call-overload]
                             col(Execution.status))
                      .where(col(Execution.event_id).in_(list(rounds)))).all()
    latest: dict[str, list[str]] = {}
    for event_id, match_round, status in rows:
        if match_round == rounds[event_id]:
            latest.setdefault(event_id, []).append(str(status))
    return {e["id"]: outcome_of(e["status"], latest.get(e["id"], [])) for e in events}
