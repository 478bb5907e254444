"""Writing and reading events with SQLAlchemy Core (the ingest hot path)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from engine.errors import DuplicateEvent, StorageError
from engine.store.group_commit import GroupCommit, Pending
from engine.store.models import Event, EventStatus
from engine.store.statements import INSERT_EVENT

EVENTS = Event.__table__  # type: ignore[attr-defined]
MAX_BATCH = 64
WRITE_TIMEOUT_S = 30.0  # a request answers 503 rather than wait longer for its commit

log = logging.getLogger(__name__)





def insert_event(db: Engine, row: dict[str, Any]) -> None:
    """Commit one event row. Raises DuplicateEvent or StorageError; returns only once
    the row is durable."""
    row.setdefault("status", EventStatus.pending.value)
    try:
        with db.begin() as conn:
            conn.execute(INSERT_EVENT, row)
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


class _Pending(Pending):
    __slots__ = ("row", "queued")

    def __init__(self, row: dict[str, Any]):
        super().__init__()
        self.row = row
        self.queued = False


class EventWriter:
    """Group commit for ingest (``engine.store.group_commit``): the events waiting in
    this process are inserted in one transaction and handed to the workers in one Redis
    round trip (``push``). Each request returns only after its own row is committed —
    the promise is unchanged.

    A batch that meets a unique-key conflict (a duplicate delivery) is retried row by
    row, so each request gets its own answer."""

    def __init__(self, db: Callable[[], Engine], push: Callable[[list[str]], None] | None = None,
                 max_batch: int = MAX_BATCH):
        self.db = db  # the engine as of each commit (a Runtime's may be replaced)
        self.push = push
        self._group: GroupCommit[_Pending] = GroupCommit(
            self._commit, max_batch=max_batch, timeout_s=WRITE_TIMEOUT_S, what="event")
        self.rows = 0

    @property
    def batches(self) -> int:
        """Transactions committed (rows / batches = the grouping)."""
        return self._group.batches

    @property
    def waiting(self) -> int:
        """Rows handed in and not yet taken into a batch."""
        return self._group.waiting

    def write(self, row: dict[str, Any]) -> bool:
        """Store the row durably, then queue it. Answers whether it was queued (False:
        Redis failed; the sweeper will). Raises DuplicateEvent or StorageError."""
        return self._group.submit(_Pending(row)).queued

    def _commit(self, batch: list[_Pending]) -> None:
        for p in batch:
            p.row.setdefault("status", EventStatus.pending.value)
        stored: list[_Pending] = []
        try:
            with self.db().begin() as conn:
                conn.execute(INSERT_EVENT, [p.row for p in batch])
            stored = batch
        except IntegrityError:
            for p in batch:  # one by one: each request gets its own answer
                try:
                    insert_event(self.db(), p.row)
                    stored.append(p)
                except (DuplicateEvent, StorageError) as exc:
                    p.error = exc
                    p.done = True
        except DBAPIError as exc:
            err = StorageError(f"database unavailable: {type(exc.orig).__name__}")
            for p in batch:
                p.error = err
                p.done = True
            return
        self.rows += len(stored)
        if stored and self.push is not None:
            try:
                self.push([p.row["id"] for p in stored])
                for p in stored:
                    p.queued = True
            except Exception as exc:  # Redis down: stored all the same; the sweeper queues
                log.warning("events %s stored but not queued (the sweeper will): %s",
                            [p.row["id"] for p in stored], exc)
        for p in stored:
            p.done = True
