"""The drain loop: a worker empties one inbox shard, a batch at a time.

The producer side (push, flags, steal) is ``engine.broker.inbox``; this module only
pops ids and hands each batch to ``engine.run.batch.process_events``.
"""

from __future__ import annotations

import logging
import time

from engine.broker.inbox import (
    BATCH,
    DRAIN_FOR_S,
    FLAG_REFRESH_S,
    FLAG_TTL_S,
    flag_key,
    inbox_key,
    start_drain,
    steal,
)
from engine.run.batch import Submit, process_events
from engine.runtime import Runtime

log = logging.getLogger(__name__)


def drain(rt: Runtime, shard: int, submit: Submit | None = None) -> int:
    """Process the shard's events until it is empty (or DRAIN_FOR_S passed)."""
    conn, name = rt.redis, rt.queue.name
    inbox, flag = inbox_key(name, shard), flag_key(name, shard)
    done = 0
    started = time.monotonic()
    while True:
        if time.monotonic() - started > DRAIN_FOR_S:
            # hand over while still holding the flag: the successor refreshes it
            conn.set(flag, "1", ex=FLAG_TTL_S)
            start_drain(rt.queue, shard)
            return done
        conn.set(flag, "1", ex=FLAG_TTL_S)
        ids: list[bytes] = conn.lpop(inbox, BATCH) or []  # type: ignore[assignment]
        if not ids:
            ids = steal(conn, name, shard)
        if not ids:
            conn.delete(flag)
            # An id pushed after our pop but before the delete saw the flag set and
            # started no drainer: take the flag back if nobody else has (a pusher that
            # won it started a fresh drain job).
            if conn.llen(inbox) and conn.set(flag, "1", nx=True, ex=FLAG_TTL_S):
                continue
            return done
        batch = [raw.decode() for raw in ids]
        refreshed = time.monotonic()

        def keep_flag() -> None:  # chains run inline: keep the shard while they do
            nonlocal refreshed
            if time.monotonic() - refreshed > FLAG_REFRESH_S:  # not a round trip per event
                conn.set(flag, "1", ex=FLAG_TTL_S)
                refreshed = time.monotonic()

        try:
            process_events(rt, batch, before_each=keep_flag, submit=submit)
        except Exception:  # recorded on the events; the sweeper retries what is open
            log.exception("events %s failed in the drain", batch)
        done += len(batch)

