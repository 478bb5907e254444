"""Writing and reading events with SQLAlchemy Core (the ingest hot path)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from engine.errors import StorageError
from engine.models import Event, EventStatus

EVENTS = Event.__table__  # type: ignore[attr-defined]


class DuplicateEvent(Exception):
    """An event with the same (source, dedup key) is stored already."""

    def __init__(self, event_id: str):
        super().__init__(event_id)
        self.event_id = event_id


def insert_event(db: Engine, row: dict[str, Any]) -> None:
    """Commit one event row. Raises DuplicateEvent or StorageError; returns only once
    the row is durable."""
    row.setdefault("status", EventStatus.pending.value)
    try:
        with db.begin() as conn:
            conn.execute(insert(EVENTS), row)
    except IntegrityError as exc:
        if row.get("dedup_key") is not None:
            existing = find_by_dedup(db, row["source"], row["dedup_key"])
            if existing:
                raise DuplicateEvent(existing) from None
        raise StorageError(f"event could not be stored: {exc.orig}") from exc
    except DBAPIError as exc:
        raise StorageError(f"database unavailable: {type(exc.orig).__name__}") from exc


def find_by_dedup(db: Engine, source: str, dedup_key: str) -> str | None:
    with db.connect() as conn:
        return conn.execute(
            select(EVENTS.c.id).where(
                EVENTS.c.source == source, EVENTS.c.dedup_key == dedup_key
            )
        ).scalar()
