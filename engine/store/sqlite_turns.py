"""SQLite writers take turns: one writing transaction at a time per database file,
across the threads and processes of an installation, handed over the moment it ends.

SQLite allows one writer; the others get SQLITE_BUSY and its busy handler sleeps and
polls with growing pauses (1, 2, 5, 10, 15, 20, 25 … ms). Under load — a web process
committing events while workers checkpoint steps — those sleeps, not the work, set the
latency: a 0.1 ms wait becomes 30-80 ms. Here a write statement first takes the file's
turn (a thread lock, then an ``flock`` on ``<database>.write-lock``) and gives it back
right after the transaction's commit or rollback, so the next writer starts at once.

Hooked in at the DB-API level (``sqlite3.connect(factory=...)``): the turn is taken
before the statement that opens a writing transaction and released after the real
commit — SQLAlchemy's own events fire before it. Waiting is bounded: after
``WAIT_S`` a writer goes ahead without its turn (SQLite's busy timeout still applies),
so a bug here can slow writes down but never stop them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WAIT_S = 30.0
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "UPSERT")


class WriterTurns:
    """The turn to write one SQLite file. Any thread may release it (a pooled connection
    can be reset from another thread); a thread that already holds it nests."""

    def __init__(self, lock_path: Path):
        self.lock_path = lock_path
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._fd: int | None = None  # an flock belongs to the open file: one per process

    def acquire(self) -> bool:
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        if not self._lock.acquire(timeout=WAIT_S):
            log.error("waited %.0f s for the SQLite write turn; writing without it", WAIT_S)
            return False
        if not self._flock():
            self._lock.release()
            return False
        self._owner, self._depth = me, 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        self._owner = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()

    def _flock(self) -> bool:
        if self._fd is None:
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        # Poll (never block without a bound): spin briefly, then sleep in 0.5 ms steps.
        deadline = time.monotonic() + WAIT_S
        tries = 0
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            tries += 1
            if time.monotonic() > deadline:
                log.error("waited %.0f s for %s; writing without the turn", WAIT_S,
                          self.lock_path)
                return False
            time.sleep(0 if tries < 20 else 0.0005)


class _TurnCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self._in_turn(sql, super().execute, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        return self._in_turn(sql, super().executemany, seq_of_parameters)

    def _in_turn(self, sql: str, run: Callable[[str, Any], Any], parameters: Any) -> Any:
        conn: TurnConnection = self.connection  # type: ignore[assignment]
        conn._before(sql)
        try:
            return run(sql, parameters)
        finally:
            conn._after()


class TurnConnection(sqlite3.Connection):
    """A sqlite3 connection that takes its database's write turn (``turns``, set on a
    subclass per database by ``connection_factory``)."""

    turns: WriterTurns
    _held = False

    def cursor(self, factory: Any = None) -> Any:  # type: ignore[override]
        return super().cursor(factory or _TurnCursor)

    def _before(self, sql: str) -> None:
        if not self._held and sql.lstrip()[:7].upper().startswith(WRITES):
            self._held = self.turns.acquire()

    def _after(self) -> None:
        if self._held and not self.in_transaction:  # autocommit, or the statement failed
            self._give_back()

    def _give_back(self) -> None:
        self._held = False
        self.turns.release()

    def commit(self) -> None:
        self._ending(super().commit)

    def rollback(self) -> None:
        self._ending(super().rollback)

    def close(self) -> None:
        self._ending(super().close)

    def _ending(self, end: Callable[[], None]) -> None:
        """Run the transaction's end, then give the turn back (after, not before: the
        next writer must find SQLite's lock free)."""
        try:
            end()
        finally:
            if self._held:
                self._give_back()


_FACTORIES: dict[str, type[TurnConnection]] = {}
_FACTORIES_LOCK = threading.Lock()


def connection_factory(database_path: str) -> type[TurnConnection]:
    """A TurnConnection class bound to the turns of ``database_path``'s file (one per
    file and process, so several engines on one file share them)."""
    key = os.path.realpath(database_path)
    with _FACTORIES_LOCK:
        if key not in _FACTORIES:
            turns = WriterTurns(Path(f"{key}.write-lock"))
            _FACTORIES[key] = type("TurnConnection", (TurnConnection,), {"turns": turns})
        return _FACTORIES[key]
