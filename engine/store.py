"""Writing and reading events with SQLAlchemy Core (the ingest hot path)."""

from __future__ import annotations

import logging
import os
import queue as queue_mod
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from engine.errors import StorageError
from engine.models import Event, EventStatus
from engine.statements import INSERT_EVENT

EVENTS = Event.__table__  # type: ignore[attr-defined]
MAX_BATCH = 64
WRITE_TIMEOUT_S = 30.0  # a request answers 503 rather than wait longer for its commit

log = logging.getLogger(__name__)


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
        self.done = threading.Event()
        self.error: Exception | None = None
        self.queued = False


class EventWriter:
    """Group commit for ingest: request threads hand their event row to one writer
    thread per process, which inserts every row waiting at that moment in one
    transaction, commits, then hands all their ids to the workers in one Redis round
    trip (``push``), and wakes the requests. Each request still returns only after its
    own row is committed — the promise is unchanged; under load, one commit and one
    round trip serve many requests.

    A batch that meets a unique-key conflict (a duplicate delivery) is retried row by
    row, so each request gets its own answer."""

    def __init__(self, db: Callable[[], Engine], push: Callable[[list[str]], None] | None = None,
                 max_batch: int = MAX_BATCH):
        self.db = db  # the engine as of each commit (a Runtime's may be replaced)
        self.push = push
        self.max_batch = max_batch
        self._queue: queue_mod.SimpleQueue[_Pending | None] = queue_mod.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.batches = 0  # transactions committed (rows / batches = the grouping)
        self.rows = 0

    def write(self, row: dict[str, Any]) -> bool:
        """Store the row durably, then queue it. Answers whether it was queued (False:
        Redis failed; the sweeper will). Raises DuplicateEvent or StorageError."""
        self._ensure_thread()
        pending = _Pending(row)
        self._queue.put(pending)
        if not pending.done.wait(WRITE_TIMEOUT_S):  # never hang a request
            raise StorageError(f"the event was not stored within {WRITE_TIMEOUT_S:g} s")
        if pending.error is not None:
            raise pending.error
        return pending.queued

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:  # first use in this process (a forked server worker too)
            if self._pid != os.getpid():
                threading.Thread(target=self._run, name="hookwise-event-writer",
                                 daemon=True).start()
                self._pid = os.getpid()

    def close(self) -> None:
        """End the writer thread once the rows handed to it are written."""
        if self._pid == os.getpid():
            self._queue.put(None)
            self._pid = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue_mod.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # after this batch
                    break
                batch.append(more)
            try:
                self._commit(batch)
            except Exception as exc:  # never leave a request waiting
                log.exception("event writer failed")
                for p in batch:
                    if not p.done.is_set():
                        p.error = StorageError(f"event could not be stored: {exc}")
                        p.done.set()

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
                    p.done.set()
        except DBAPIError as exc:
            err = StorageError(f"database unavailable: {type(exc.orig).__name__}")
            for p in batch:
                p.error = err
                p.done.set()
            return
        self.batches += 1
        self.rows += len(stored)
        if stored and self.push is not None:
            try:
                self.push([p.row["id"] for p in stored])
                for p in stored:
                    p.queued = True
            except Exception as exc:  # Redis down: stored all the same; the sweeper queues
                log.warning("%d events stored but not queued (the sweeper will): %s",
                            len(stored), exc)
        for p in stored:
            p.done.set()
