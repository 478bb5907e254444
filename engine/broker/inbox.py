"""The inbox: how ingest hands new events to workers in one Redis round trip.

One RQ job per event costs ~25 Redis round trips of RQ bookkeeping. Instead, ingest
appends each event id to one of ``SHARDS`` Redis lists (a group commit's ids together:
``push_many``) and, in the same pipeline, sets that shard's *draining* flag; only
when the flag was newly set does it enqueue an RQ job ``drain_inbox(shard)``. The drain
job pops ids in batches, processes each batch, and refreshes its flag; when its list is
empty it takes a batch from the fullest other shard (``steal``), and when all are empty
it clears the flag and looks once more (an id pushed in between would otherwise wait).
Up to ``SHARDS`` drain jobs run in parallel.

Durability does not depend on any of this: the event row is committed before the push,
and the sweeper re-queues events left pending (a lost list, a drain job whose worker
died), drain jobs of dead workers, and shards with ids but no drainer.
"""

from __future__ import annotations

import logging
import zlib

import redis
from rq import Queue

from engine.broker.jobs import DRAIN_INBOX
from engine.errors import QueueError
from engine.ids import new_id

log = logging.getLogger(__name__)

SHARDS = 4
BATCH = 32  # ids popped but not yet matched are invisible to the sweeper: keep it modest
FLAG_TTL_S = 30  # a drain job that dies stops refreshing it; the sweeper takes over
FLAG_REFRESH_S = 5.0  # while chains run: well inside the TTL
DRAIN_FOR_S = 5.0  # then hand over to a fresh job, so workers take turns between shards


def inbox_key(queue: str, shard: int) -> str:
    return f"hookwise:inbox:{queue}:{shard}"


def flag_key(queue: str, shard: int) -> str:
    return f"hookwise:draining:{queue}:{shard}"


def shard_of(event_id: str) -> int:
    return zlib.crc32(event_id.encode()) % SHARDS


def push_many(queue: Queue, event_ids: list[str]) -> None:
    """Hand just-stored events to the workers in one round trip (plus one enqueue per
    shard that had no drainer). Raises QueueError if Redis is down."""
    by_shard: dict[int, list[str]] = {}
    for event_id in event_ids:
        by_shard.setdefault(shard_of(event_id), []).append(event_id)
    try:
        with queue.connection.pipeline(transaction=False) as pipe:
            for shard, ids in by_shard.items():
                pipe.rpush(inbox_key(queue.name, shard), *ids)
                pipe.set(flag_key(queue.name, shard), "1", nx=True, ex=FLAG_TTL_S)
            res = pipe.execute()
        for i, shard in enumerate(by_shard):
            if res[2 * i + 1]:
                start_drain(queue, shard)
    except redis.RedisError as exc:
        raise QueueError(f"could not queue events {event_ids}: {exc}") from exc


def start_drain(queue: Queue, shard: int) -> None:
    """Enqueue a drain job for the shard. Only the holder of the shard's flag calls this
    (the flag, won with SET NX, is the one mutex), so each job gets a fresh id."""
    queue.enqueue_call(DRAIN_INBOX, args=(shard,), job_id=f"drain-{queue.name}-{new_id('d')}",
                       result_ttl=0, failure_ttl=3600, description=f"drain inbox shard {shard}")


def pending_ids(conn: redis.Redis, queue: str, limit: int = 10_000) -> set[str]:
    """Event ids waiting in the inbox (the sweeper leaves these alone)."""
    with conn.pipeline(transaction=False) as pipe:
        for shard in range(SHARDS):
            pipe.lrange(inbox_key(queue, shard), 0, limit)
        return {i.decode() for ids in pipe.execute() for i in ids}


def depth(conn: redis.Redis, queue: str) -> int:
    """Event ids waiting in all shards."""
    with conn.pipeline(transaction=False) as pipe:
        for shard in range(SHARDS):
            pipe.llen(inbox_key(queue, shard))
        return sum(pipe.execute())


def queue_depth(queue: Queue) -> dict[str, int]:
    """What waits for a worker: events in the inbox plus RQ jobs (not counting the drain
    jobs that carry the inbox), and scheduled jobs (retries, delays)."""
    jobs = [j for j in queue.get_job_ids() if not j.startswith("drain-")]
    return {"queued": depth(queue.connection, queue.name) + len(jobs),
            "scheduled": len(queue.scheduled_job_registry)}


def undrained_shards(conn: redis.Redis, queue: str) -> list[int]:
    """Shards with ids waiting but no drain flag (its job died, or was lost)."""
    with conn.pipeline(transaction=False) as pipe:
        for shard in range(SHARDS):
            pipe.llen(inbox_key(queue, shard))
            pipe.exists(flag_key(queue, shard))
        res = pipe.execute()
    return [s for s in range(SHARDS) if res[2 * s] and not res[2 * s + 1]]


def steal(conn: redis.Redis, queue: str, shard: int) -> list[bytes]:
    """A batch from the fullest other shard. A drain job whose own shard is empty takes
    work from the others rather than ending, so one worker does not pay a job's start
    (~5 ms of RQ bookkeeping) per shard in turn: with one worker at 100 events/s that
    was most of an event's ~35 ms wait. The other shard's own job, when it runs, finds
    its list empty and ends; LPOP hands each id to one popper only."""
    others = [s for s in range(SHARDS) if s != shard]
    with conn.pipeline(transaction=False) as pipe:
        for s in others:
            pipe.llen(inbox_key(queue, s))
        lengths = pipe.execute()
    fullest = max(zip(lengths, others, strict=True))
    if not fullest[0]:
        return []
    return conn.lpop(inbox_key(queue, fullest[1]), BATCH) or []  # type: ignore[return-value]
