"""Writing and reading events with SQLAlchemy Core (the ingest hot path)."""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from engine.errors import DuplicateEvent, StorageError
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


class _Pending:
    __slots__ = ("row", "done", "error", "queued")

    def __init__(self, row: dict[str, Any]):
        self.row = row
        self.done = False
        self.error: Exception | None = None
        self.queued = False


class EventWriter:
    """Group commit for ingest. A request hands its event row in; if no other request
    of this process is writing, it becomes the *leader*: it inserts every row waiting at
    that moment in one transaction, commits, and hands all their ids to the workers in
    one Redis round trip (``push``). The others sleep on a condition until their row is
    done; a leader whose own row is done hands over to one of them. Each request returns
    only after its own row is committed — the promise is unchanged — and under load one
    commit and one round trip serve many requests, while an idle server pays no
    hand-off between threads.

    A batch that meets a unique-key conflict (a duplicate delivery) is retried row by
    row, so each request gets its own answer."""

    def __init__(self, db: Callable[[], Engine], push: Callable[[list[str]], None] | None = None,
                 max_batch: int = MAX_BATCH):
        self.db = db  # the engine as of each commit (a Runtime's may be replaced)
        self.push = push
        self.max_batch = max_batch
        self._queue: queue_mod.SimpleQueue[_Pending] = queue_mod.SimpleQueue()
        self._cond = threading.Condition()
        self._leading = False
        self.batches = 0  # transactions committed (rows / batches = the grouping)
        self.rows = 0

    def write(self, row: dict[str, Any]) -> bool:
        """Store the row durably, then queue it. Answers whether it was queued (False:
        Redis failed; the sweeper will). Raises DuplicateEvent or StorageError."""
        pending = _Pending(row)
        self._queue.put(pending)
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        with self._cond:
            while not pending.done and self._leading:
                left = deadline - time.monotonic()
                if left <= 0:  # never hang a request
                    raise StorageError(
                        f"the event was not stored within {WRITE_TIMEOUT_S:g} s")
                self._cond.wait(left)
            if not pending.done:
                self._leading = True
        if not pending.done:
            self._lead(pending)
        if not pending.done:  # defensive: the leader always takes its own row
            raise StorageError("the event was not stored")
        if pending.error is not None:
            raise pending.error
        return pending.queued

    def _lead(self, mine: _Pending) -> None:
        """Commit batches until ``mine`` is done, then hand over: a waiting request whose
        row is not done yet becomes the next leader (no request leads for long)."""
        try:
            while not mine.done:
                batch: list[_Pending] = []
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue_mod.Empty:
                        break
                if not batch:
                    return
                try:
                    self._commit(batch)
                except Exception as exc:  # never leave a request waiting
                    log.exception("event writer failed")
                    for p in batch:
                        if not p.done:
                            p.error = StorageError(f"event could not be stored: {exc}")
                            p.done = True
                with self._cond:
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()  # a row handed in meanwhile finds a new leader

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
        self.batches += 1
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
