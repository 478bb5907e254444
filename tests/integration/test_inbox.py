"""The inbox's drain jobs (engine/broker/inbox.py, engine/work/drain.py) on a real Redis
and database."""

from __future__ import annotations

from sqlmodel import Session, select

from engine.broker import inbox
from engine.store.models import Event
from engine.work.drain import drain


def test_one_drain_job_takes_the_other_shards_work_too(rt, forwarded, sink, work):  # type: ignore[no-untyped-def]
    """A drain job whose shard runs dry takes batches from the others instead of ending:
    one worker then does not pay a job start per shard in turn (paced 100/s with one
    worker: p50 32 → 10 ms in bench). Each event still runs once."""
    ids = forwarded(24)
    shards = {inbox.shard_of(i) for i in ids}
    assert len(shards) >= 2  # 24 random ids in one of 4 shards: ~1e-14
    first = inbox.shard_of(ids[0])

    assert drain(rt, first) == 24  # this one job did every shard's events
    assert inbox.depth(rt.redis, rt.queue.name) == 0
    assert sorted(int(r.json()["n"]) for r in sink.wait_for(24)) == list(range(24))

    work()  # the other shards' own jobs run, find nothing and end
    assert len(sink.requests) == 24
    with Session(rt.db) as s:
        assert {e.status for e in s.exec(select(Event))} == {"processed"}
    assert not inbox.undrained_shards(rt.redis, rt.queue.name)
