"""Group commit: many threads' writes in one transaction, each caller still returning
only once its own write is committed.

A thread hands its write in; if no other thread of this process is writing, it becomes
the *leader*: it commits every write waiting at that moment in one transaction, then
wakes their threads. The others sleep on a condition until their write is done; a leader
whose own write is done hands over to one of them, so no thread leads for long, and an
idle process pays no hand-off between threads. Under load one commit serves many
writes. Used for ingest's events (``event_writer``) and, through ``StatementWriter``,
the workers' step claims and results (``engine.run.record``).
"""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.sql.expression import Executable

from engine.errors import StorageError

log = logging.getLogger(__name__)


class Pending:
    """One write handed in: ``done`` once committed or refused (``error``)."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: Exception | None = None


P = TypeVar("P", bound=Pending)


class GroupCommit(Generic[P]):
    """The leader/follower mechanism; ``commit`` writes a batch and marks each done."""

    def __init__(self, commit: Callable[[list[P]], None], *, max_batch: int,
                 timeout_s: float, what: str):
        self._commit = commit
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.what = what
        self._queue: queue_mod.SimpleQueue[P] = queue_mod.SimpleQueue()
        self._cond = threading.Condition()
        self._leading = False
        self.batches = 0  # transactions committed (writes / batches = the grouping)

    @property
    def waiting(self) -> int:
        """Writes handed in and not yet taken into a batch."""
        return self._queue.qsize()

    def submit(self, pending: P) -> P:
        """Hand ``pending`` in and wait until it is done; raises its error."""
        self._queue.put(pending)
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while not pending.done and self._leading:
                left = deadline - time.monotonic()
                if left <= 0:  # never hang the caller
                    raise StorageError(f"the {self.what} was not stored within "
                                       f"{self.timeout_s:g} s")
                self._cond.wait(left)
            if not pending.done:
                self._leading = True
        if not pending.done:
            self._lead(pending)
        if not pending.done:  # defensive: the leader always takes its own write
            raise StorageError(f"the {self.what} was not stored")
        if pending.error is not None:
            raise pending.error
        return pending

    def _lead(self, mine: P) -> None:
        try:
            while not mine.done:
                batch: list[P] = []
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue_mod.Empty:
                        break
                if not batch:
                    return
                try:
                    self._commit(batch)
                    self.batches += 1
                except Exception as exc:  # never leave a caller waiting
                    log.exception("%s writer failed", self.what)
                    for p in batch:
                        if not p.done:
                            p.error = StorageError(f"{self.what} could not be stored: {exc}")
                            p.done = True
                with self._cond:
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()  # a write handed in meanwhile finds a new leader


class _Statement(Pending):
    __slots__ = ("stmt", "params", "then", "rowcount")

    def __init__(self, stmt: Executable, params: dict[str, Any],
                 then: tuple[Executable, dict[str, Any]] | None):
        super().__init__()
        self.stmt, self.params, self.then = stmt, params, then
        self.rowcount = 0


class StatementWriter:
    """Group commit of single statements (the workers' step claims and results): each
    caller gets its own rowcount; ``then`` runs in the same transaction when the
    statement changed a row (a step's result and its execution's end together)."""

    def __init__(self, db: Callable[[], Engine], *, max_batch: int = 256,
                 timeout_s: float = 60.0):
        self.db = db
        self._group: GroupCommit[_Statement] = GroupCommit(
            self._commit, max_batch=max_batch, timeout_s=timeout_s, what="step record")

    @property
    def batches(self) -> int:
        return self._group.batches

    def execute(self, stmt: Executable, params: dict[str, Any], *,
                then: tuple[Executable, dict[str, Any]] | None = None) -> int:
        """Run ``stmt`` with ``params`` in a shared transaction; answers its rowcount
        once committed."""
        return self._group.submit(_Statement(stmt, params, then)).rowcount

    def _commit(self, batch: list[_Statement]) -> None:
        with self.db().begin() as conn:
            for w in batch:
                w.rowcount = conn.execute(w.stmt, w.params).rowcount
                if w.rowcount and w.then is not None:
                    conn.execute(*w.then)
        for w in batch:
            w.done = True
