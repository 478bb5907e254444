"""Read-side queries for the API and the UI: filtered, paginated lists, one event with
everything that happened to it, and the dashboard's time series."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from engine.ids import utcnow
from engine.store.models import Event, Execution, MatchTrace, StepRun, event_document
from engine.store.outcomes import outcome_clause
from rules.errors import PathError
from rules.paths import compile_path

MAX_LIMIT = 200
JSONPATH_SCAN = 5000  # newest events scanned when filtering by JSONPath


@dataclass
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        nxt = self.offset + self.limit
        return nxt if nxt < self.total else None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "limit": self.limit,
                "offset": self.offset, "next_offset": self.next_offset}


def row(obj: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A table row as a JSON-able dict (datetimes as ISO 8601 strings)."""
    out = {}
    for k, v in obj.model_dump().items():
        if k in exclude:
            continue
        out[k] = v.isoformat() if isinstance(v, datetime) else v
    return out


def event_summary(e: Event) -> dict[str, Any]:
    return row(e, ("raw_body", "headers", "query", "body"))


def list_events(
    db: Engine, *, source: str | None = None, status: str | None = None,
    since: datetime | None = None, until: datetime | None = None, text: str | None = None,
    path: str | None = None, value: str | None = None, limit: int = 50, offset: int = 0,
    outcome: str | None = None,
) -> Page:
    """Events newest first. ``text`` searches the raw body; ``path`` keeps events where
    the JSONPath selects something (equal to ``value`` when given); ``outcome``: see
    ``engine.store.outcomes``. Raises PathError."""
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    q = select(Event)
    if source:
        q = q.where(Event.source == source)
    if status:
        q = q.where(Event.status == status)
    if outcome:
        q = q.where(outcome_clause(outcome))
    if since:
        q = q.where(Event.received_at >= since)
    if until:
        q = q.where(Event.received_at < until)
    if text:
        like = f"%{text}%"
        q = q.where(or_(func.cast(col(Event.raw_body), _text_type()).like(like),
                        col(Event.id) == text))
    q = q.order_by(Event.received_at.desc())  # type: ignore[attr-defined]
    with Session(db) as s:
        if path:
            compiled = compile_path(path)
            matches = []
            for ev in s.exec(q.limit(JSONPATH_SCAN)):
                found = compiled.values(event_document(ev))
                if found and (value is None or any(_same(v, value) for v in found)):
                    matches.append(ev)
            return Page([event_summary(e) for e in matches[offset:offset + limit]],
                        len(matches), limit, offset)
        total = s.exec(select(func.count()).select_from(q.subquery())).one()
        items = [event_summary(e) for e in s.exec(q.offset(offset).limit(limit))]
    return Page(items, int(total), limit, offset)


def _text_type() -> Any:
    from sqlalchemy import Text

    return Text


def _same(found: Any, wanted: str) -> bool:
    if isinstance(found, bool):
        return str(found).lower() == wanted.lower()
    return str(found) == wanted


def get_event(db: Engine, event_id: str) -> dict[str, Any] | None:
    """The event with its payload, every round's match traces, and every execution
    with its steps."""
    with Session(db) as s:
        ev = s.get(Event, event_id)
        if ev is None:
            return None
        traces = s.exec(select(MatchTrace).where(MatchTrace.event_id == event_id)
                        .order_by(col(MatchTrace.match_round).desc(), col(MatchTrace.id))).all()
        execs = s.exec(select(Execution).where(Execution.event_id == event_id)
                       .order_by(Execution.created_at)).all()  # type: ignore[arg-type]
        out = []
        for ex in execs:
            steps = s.exec(select(StepRun).where(StepRun.execution_id == ex.id)
                           .order_by(StepRun.position)).all()  # type: ignore[arg-type]
            out.append({**row(ex), "steps": [row(st) for st in steps]})
        emitted = s.exec(select(Event.id).where(Event.parent_id == event_id)
                         .order_by(Event.received_at)).all()  # type: ignore[arg-type]
    data = row(ev, ("raw_body",))
    data["raw_body"] = ev.raw_body.decode("utf-8", "replace")
    # an emit step's event: its parent, and the events this one's chains emitted
    data["emitted"] = ev.parent_id is not None
    data["emitted_events"] = list(emitted)
    return {"event": data, "matches": [row(t) for t in traces], "executions": out}


def list_executions(db: Engine, *, status: str | None = None, rule: str | None = None,
                    event_id: str | None = None, limit: int = 50, offset: int = 0) -> Page:
    limit = max(1, min(limit, MAX_LIMIT))
    q = select(Execution)
    if status:
        q = q.where(Execution.status == status)
    if rule:
        q = q.where(Execution.rule_name == rule)
    if event_id:
        q = q.where(Execution.event_id == event_id)
    q = q.order_by(Execution.created_at.desc())  # type: ignore[attr-defined]
    with Session(db) as s:
        total = s.exec(select(func.count()).select_from(q.subquery())).one()
        items = [row(e) for e in s.exec(q.offset(offset).limit(limit))]
    return Page(items, int(total), limit, offset)


def get_execution(db: Engine, execution_id: str) -> dict[str, Any] | None:
    with Session(db) as s:
        ex = s.get(Execution, execution_id)
        if ex is None:
            return None
        steps = s.exec(select(StepRun).where(StepRun.execution_id == execution_id)
                       .order_by(StepRun.position)).all()  # type: ignore[arg-type]
        return {**row(ex), "steps": [row(st) for st in steps]}


def rule_activity(db: Engine) -> dict[str, dict[str, Any]]:
    """Per rule: when it last matched and how many times (all rounds)."""
    with Session(db) as s:
        rows = s.exec(
            select(MatchTrace.rule_name, func.max(MatchTrace.created_at), func.count())
            .where(MatchTrace.matched == True)  # noqa: E712
            .group_by(MatchTrace.rule_name)
        ).all()
    return {name: {"last_matched_at": last.isoformat() if last else None, "matches": n}
            for name, last, n in rows}


def timeseries(db: Engine, *, hours: int = 24, buckets: int = 48) -> dict[str, Any]:
    """Events received and executions failed per time bucket over the last ``hours``."""
    end = utcnow()
    start = end - timedelta(hours=hours)
    width = (end - start) / buckets
    events = [0] * buckets
    failures = [0] * buckets
    with Session(db) as s:
        for ts in s.exec(select(Event.received_at).where(Event.received_at >= start)):
            events[min(int((ts - start) / width), buckets - 1)] += 1
        for ts in s.exec(select(Execution.updated_at).where(
                Execution.status == "failed", Execution.updated_at >= start)):
            failures[min(int((ts - start) / width), buckets - 1)] += 1
    labels = [(start + width * i).isoformat() for i in range(buckets)]
    return {"start": start.isoformat(), "end": end.isoformat(), "labels": labels,
            "events": events, "failures": failures}


def counts(db: Engine) -> dict[str, Any]:
    with Session(db) as s:
        ev = dict(s.exec(select(Event.status, func.count()).group_by(Event.status)).all())  # type: ignore[arg-type]
        ex = dict(s.exec(select(Execution.status, func.count())  # type: ignore[arg-type]
                         .group_by(Execution.status)).all())
    return {"events": {str(k): v for k, v in ev.items()},
            "executions": {str(k): v for k, v in ex.items()}}


__all__ = ["Page", "PathError", "get_event", "get_execution", "list_events",
           "list_executions", "rule_activity", "timeseries", "counts"]
