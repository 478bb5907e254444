"""The built-in request inspector's record: what ``/inspect/<name>`` received.

Bounded: the newest ``KEEP_PER_NAME`` requests of a name and ``MAX_ROWS`` in all are
kept, bodies cut to ``MAX_BODY_BYTES``; credential headers are stored as ``[redacted]``
(an outgoing step's ``Authorization: Bearer {{ secrets.X }}`` must not make a secret
readable in the UI).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine

from engine.ids import utcnow
from engine.store.models import InspectedRequest
from engine.store.rejections import scrub

KEEP_PER_NAME = 100
MAX_ROWS = 5_000
MAX_BODY_BYTES = 64 * 1024

TABLE = InspectedRequest.__table__  # type: ignore[attr-defined]


def record(eng: Engine, name: str, *, method: str, content_type: str,
           headers: dict[str, str], query: dict[str, Any], body: bytes,
           remote_addr: str | None) -> int:
    """Store one received request; answers its id."""
    row = {"name": name[:64], "received_at": utcnow(), "method": method[:16],
           "content_type": content_type[:255], "headers": scrub(headers),
           "query": scrub(query), "body": body[:MAX_BODY_BYTES].decode("utf-8", "replace"),
           "body_size": len(body), "remote_addr": (remote_addr or "")[:64] or None}
    with eng.begin() as conn:
        key = conn.execute(insert(TABLE).values(**row)).inserted_primary_key
        assert key is not None
        new_id = int(key[0])
        edge = conn.execute(select(TABLE.c.id).where(TABLE.c.name == row["name"])
                            .order_by(TABLE.c.id.desc()).offset(KEEP_PER_NAME)
                            .limit(1)).scalar()
        if edge is not None:
            conn.execute(delete(TABLE).where(TABLE.c.name == row["name"], TABLE.c.id <= edge))
        if new_id % 100 == 0:
            conn.execute(delete(TABLE).where(TABLE.c.id <= new_id - MAX_ROWS))
    return new_id


def requests(eng: Engine, name: str, *, limit: int = KEEP_PER_NAME) -> list[dict[str, Any]]:
    """Newest first."""
    with eng.connect() as conn:
        rows = conn.execute(select(TABLE).where(TABLE.c.name == name)
                            .order_by(TABLE.c.id.desc()).limit(limit)).all()
    out = []
    for r in rows:
        d = dict(r._mapping)
        d["received_at"] = d["received_at"].isoformat()
        out.append(d)
    return out


def names(eng: Engine) -> list[dict[str, Any]]:
    """Every name that received something: its count and last time, newest first."""
    with eng.connect() as conn:
        rows = conn.execute(select(TABLE.c.name, func.count(), func.max(TABLE.c.received_at))
                            .group_by(TABLE.c.name)
                            .order_by(func.max(TABLE.c.id).desc())).all()
    return [{"name": n, "count": int(c), "last_at": last} for n, c, last in rows]
