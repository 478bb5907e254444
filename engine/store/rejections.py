"""Rejected webhooks: a bounded, expiring record of requests answered 400, 401, 413,
415 or 429 — the first thing to look at when a provider's setup is wrong.

Recording is cheap and can never change the answer: ``RejectionRecorder.offer`` counts
the rejection (one Redis round trip; a per-process count when Redis is down), keeps at
most ``SAMPLE_PER_MINUTE`` per source per minute for the record (the rest are only
counted), and hands the row to a background thread that writes in batches. A full queue
drops the row (still counted); a failing database is logged, never raised.

Stored: source, time, status, error code and reason, method, content type, headers and
query with every credential replaced by ``[redacted]`` (authorization, cookies,
signatures, tokens, keys, the source's own token header or parameter), and the first
``BODY_EXCERPT_BYTES`` of the body. Bounded by ``prune``: rows older than ``KEEP_S``,
beyond ``MAX_PER_SOURCE`` per source or ``MAX_ROWS`` in all are deleted (by the writer
every ``PRUNE_EVERY`` rows, and by the sweeper on every pass).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select

from engine.ids import utcnow
from engine.store.models import RejectedRequest
from engine.store.secrets import REDACTED

if TYPE_CHECKING:
    import redis
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

REJECTED_STATUSES = frozenset({400, 401, 413, 415, 429})
BODY_EXCERPT_BYTES = 4096
SAMPLE_PER_MINUTE = 20  # rows recorded per source per minute; the rest are counted only
KEEP_S = 7 * 86400
MAX_ROWS = 10_000
MAX_PER_SOURCE = 1_000
QUEUE_MAX = 1_000
BATCH = 200
PRUNE_EVERY = 200
COUNTER_TTL_S = 2 * 3600
MAX_HEADER_VALUE = 1024
COUNTER_PREFIX = "hookwise:rejected"

# Header and query names that carry credentials: their values are never stored.
CREDENTIAL_NAME = re.compile(
    r"auth|cookie|signature|token|secret|hmac|api[-_]?key|password|passwd|session|"
    r"(^|[-_])sig($|[-_])|(^|[-_])key$", re.IGNORECASE)

NOT_CREDENTIALS = frozenset({"idempotency-key", "x-idempotency-key"})  # names, not secrets

TABLE = RejectedRequest.__table__  # type: ignore[attr-defined]


@dataclass
class Rejection:
    """One refused request, as ``web.ingest`` saw it and answered it."""

    source: str
    status: int
    code: str
    reason: str
    method: str = "POST"
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""
    body_size: int | None = None  # when the body was not read (413 by Content-Length)
    remote_addr: str | None = None
    received_at: datetime = field(default_factory=utcnow)
    secret_names: frozenset[str] = frozenset()  # e.g. the source's own token header

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source[:64],
            "received_at": self.received_at,
            "status": self.status,
            "code": self.code[:64],
            "reason": self.reason[:2000],
            "method": self.method[:16],
            "content_type": self.content_type[:255],
            "headers": scrub(self.headers, self.secret_names),
            "query": scrub(self.query, self.secret_names),
            "body_excerpt": self.body[:BODY_EXCERPT_BYTES].decode("utf-8", "replace"),
            "body_size": len(self.body) if self.body_size is None else self.body_size,
            "remote_addr": (self.remote_addr or None) and str(self.remote_addr)[:64],
        }


def is_credential(name: str, extra: Iterable[str] = ()) -> bool:
    low = name.lower()
    if low in {e.lower() for e in extra}:
        return True
    return low not in NOT_CREDENTIALS and CREDENTIAL_NAME.search(low) is not None


def scrub(values: dict[str, Any], extra: Iterable[str] = ()) -> dict[str, Any]:
    """``values`` with every credential's value replaced by ``[redacted]`` (long values
    cut to ``MAX_HEADER_VALUE`` characters)."""
    extra = list(extra)
    out: dict[str, Any] = {}
    for k, v in values.items():
        if is_credential(str(k), extra):
            out[str(k)] = REDACTED
        elif isinstance(v, str):
            out[str(k)] = v[:MAX_HEADER_VALUE]
        elif isinstance(v, list):
            out[str(k)] = [str(x)[:MAX_HEADER_VALUE] for x in v[:20]]
        else:
            out[str(k)] = str(v)[:MAX_HEADER_VALUE]
    return out


def counter_key(source: str, minute: int) -> str:
    return f"{COUNTER_PREFIX}:{source}:{minute}"


class RejectionRecorder:
    """Counts rejections and writes a sample of them in the background (see module)."""

    def __init__(self, db: Callable[[], Engine],
                 redis_conn: Callable[[], redis.Redis] | None = None, *,
                 sample_per_minute: int = SAMPLE_PER_MINUTE, queue_max: int = QUEUE_MAX):
        self._db = db
        self._redis = redis_conn
        self.sample_per_minute = sample_per_minute
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_max)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._local: Counter[tuple[str, int]] = Counter()  # when Redis cannot count
        self._since_prune = 0
        self.dropped = 0  # rows that found the queue full

    # -- the request's side: never raises, never blocks ---------------------------------
    def offer(self, rejection: Rejection) -> bool:
        """Count ``rejection`` and queue it for the record unless its source has had
        ``sample_per_minute`` recorded this minute. Answers whether it was queued."""
        try:
            n = self._count(rejection.source)
            if n > self.sample_per_minute:
                return False
            self._queue.put_nowait(rejection.row())
        except queue.Full:
            self.dropped += 1
            return False
        except Exception:  # recording must never change the answer
            log.exception("could not record a rejected request for %s", rejection.source)
            return False
        self._ensure_thread()
        return True

    def _count(self, source: str) -> int:
        minute = int(time.time() // 60)
        if self._redis is not None:
            try:
                with self._redis().pipeline(transaction=False) as pipe:
                    key = counter_key(source, minute)
                    pipe.incr(key)
                    pipe.expire(key, COUNTER_TTL_S)
                    return int(pipe.execute()[0])
            except Exception as exc:
                log.debug("rejection counter unavailable: %s", exc)
        with self._lock:
            for old in [k for k in self._local if k[1] < minute - 1]:
                del self._local[old]
            self._local[(source, minute)] += 1
            return self._local[(source, minute)]

    # -- the writer thread ---------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hookwise-rejections",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            rows = [first]
            stop = False
            while len(rows) < BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                rows.append(nxt)
            try:
                self._write(rows)
            except Exception as exc:
                log.warning("%d rejected request(s) not recorded: %s", len(rows), exc)
            finally:
                for _ in range(len(rows) + stop):
                    self._queue.task_done()
            if stop:
                return

    def _write(self, rows: list[dict[str, Any]]) -> None:
        eng = self._db()
        with eng.begin() as conn:
            conn.execute(insert(TABLE), rows)
        self._since_prune += len(rows)
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            prune(eng)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued row is written (tests; shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 2.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)
        self._thread = None


# -- bounds ------------------------------------------------------------------------------
def prune(eng: Engine, *, now: datetime | None = None, keep_s: float = KEEP_S,
          max_rows: int = MAX_ROWS, max_per_source: int = MAX_PER_SOURCE) -> int:
    """Delete rows older than ``keep_s``, beyond the newest ``max_per_source`` of a
    source, and beyond the newest ``max_rows`` in all. Answers how many went."""
    cutoff = (now or utcnow()) - timedelta(seconds=keep_s)
    gone = 0
    with eng.begin() as conn:
        gone += conn.execute(delete(TABLE).where(TABLE.c.received_at < cutoff)).rowcount or 0
        crowded = conn.execute(
            select(TABLE.c.source).group_by(TABLE.c.source)
            .having(func.count() > max_per_source)).scalars().all()
        for source in crowded:
            edge = conn.execute(
                select(TABLE.c.id).where(TABLE.c.source == source).order_by(TABLE.c.id.desc())
                .offset(max_per_source).limit(1)).scalar()
            if edge is not None:
                gone += conn.execute(delete(TABLE).where(
                    TABLE.c.source == source, TABLE.c.id <= edge)).rowcount or 0
        edge = conn.execute(select(TABLE.c.id).order_by(TABLE.c.id.desc())
                            .offset(max_rows).limit(1)).scalar()
        if edge is not None:
            gone += conn.execute(delete(TABLE).where(TABLE.c.id <= edge)).rowcount or 0
    return gone


# -- reading -----------------------------------------------------------------------------
def _out(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["received_at"] = d["received_at"].isoformat()
    return d


def list_rejections(eng: Engine, *, source: str | None = None, since: datetime | None = None,
                    limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Newest first: ``(rows, total)`` of the recorded rejections matching the filters."""
    where = []
    if source:
        where.append(TABLE.c.source == source)
    if since is not None:
        where.append(TABLE.c.received_at >= since)
    with eng.connect() as conn:
        total = conn.execute(select(func.count()).select_from(TABLE).where(*where)).scalar_one()
        rows = conn.execute(select(TABLE).where(*where)
                            .order_by(TABLE.c.id.desc()).limit(limit).offset(offset)).all()
    return [_out(r) for r in rows], int(total)


def get_rejection(eng: Engine, rejection_id: int) -> dict[str, Any] | None:
    with eng.connect() as conn:
        row = conn.execute(select(TABLE).where(TABLE.c.id == rejection_id)).first()
    return _out(row) if row is not None else None


@dataclass
class Summary:
    """What a source's page says: "12 rejected in the last hour: signature mismatch"."""

    total: int  # every rejection counted, recorded or not
    recorded: int
    reasons: list[tuple[str, int]]  # (reason, recorded count), most common first

    @property
    def top_reason(self) -> str | None:
        return self.reasons[0][0] if self.reasons else None


def counted(conn: redis.Redis, source: str, minutes: int = 60) -> int:
    """Rejections counted for ``source`` over the last ``minutes`` (recorded or not)."""
    now = int(time.time() // 60)
    keys = [counter_key(source, m) for m in range(now - minutes + 1, now + 1)]
    return sum(int(v) for v in conn.mget(keys) if v is not None)


def summary(eng: Engine, source: str | None, *, redis_conn: redis.Redis | None = None,
            minutes: int = 60) -> Summary:
    """Rejections of ``source`` (or every source) in the last ``minutes``."""
    since = utcnow() - timedelta(minutes=minutes)
    where = [TABLE.c.received_at >= since]
    if source:
        where.append(TABLE.c.source == source)
    with eng.connect() as conn:
        rows = conn.execute(select(TABLE.c.reason, func.count()).where(*where)
                            .group_by(TABLE.c.reason).order_by(func.count().desc())
                            .limit(5)).all()
        recorded = conn.execute(select(func.count()).select_from(TABLE)
                                .where(*where)).scalar_one()
    total = int(recorded)
    if redis_conn is not None and source:
        try:
            total = max(total, counted(redis_conn, source, minutes))
        except Exception as exc:  # Redis down: what was recorded
            log.debug("rejection counters unavailable: %s", exc)
    return Summary(total, int(recorded), [(str(r), int(n)) for r, n in rows])
