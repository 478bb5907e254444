"""An upgrade keeps the work already queued: RQ jobs name their function by dotted path,
and jobs queued by Hookwise 0.1 (``engine.tasks.*``, ``engine.inbox.drain_inbox``) still
run after the modules moved (engine/broker/jobs.py keeps the old paths as aliases)."""

from __future__ import annotations

from sqlmodel import Session, select

from engine.broker import inbox
from engine.broker.jobs import DRAIN_INBOX, LEGACY, PROCESS_EVENT, RUN_EXECUTION, canonical
from engine.run.replay import replay_event
from engine.store.models import Event, EventStatus, Execution, ExecutionStatus


def forget_queued_work(rt) -> None:  # type: ignore[no-untyped-def]
    """Drop what ingest queued with today's names, so only the old-named job can run."""
    rt.queue.empty()
    for shard in range(inbox.SHARDS):
        rt.redis.delete(inbox.inbox_key(rt.queue.name, shard),
                        inbox.flag_key(rt.queue.name, shard))


def test_jobs_queued_by_the_old_code_still_run(rt, forwarded, sink, work):  # type: ignore[no-untyped-def]
    (first, second) = forwarded(2)
    forget_queued_work(rt)

    # process_event under its 0.1 path
    rt.queue.enqueue_call("engine.tasks.process_event", args=(first,))
    work()
    assert [r.json() for r in sink.wait_for(1)] == [{"n": 0}]

    # drain_inbox under its 0.1 path, for an id waiting in its shard
    shard = inbox.shard_of(second)
    rt.redis.rpush(inbox.inbox_key(rt.queue.name, shard), second)
    rt.queue.enqueue_call("engine.inbox.drain_inbox", args=(shard,))
    work()
    assert sorted(r.json()["n"] for r in sink.wait_for(2)) == [0, 1]

    # run_execution under its 0.1 path: a replayed round's execution
    replay_event(rt, first, rules="then")
    forget_queued_work(rt)
    with Session(rt.db) as s:
        (pending,) = s.exec(select(Execution).where(
            Execution.event_id == first, Execution.status == ExecutionStatus.pending)).all()
    rt.queue.enqueue_call("engine.tasks.run_execution", args=(pending.id,))
    work()
    assert [r.json()["n"] for r in sink.wait_for(3)].count(0) == 2
    with Session(rt.db) as s:
        assert s.get(Execution, pending.id).status == ExecutionStatus.succeeded
        assert {e.status for e in s.exec(select(Event))} == {EventStatus.processed}


def test_the_sweeper_reads_old_job_names_as_todays() -> None:
    assert canonical("engine.tasks.process_event") == PROCESS_EVENT
    assert canonical("engine.tasks.run_execution") == RUN_EXECUTION
    assert canonical("engine.inbox.drain_inbox") == DRAIN_INBOX
    assert canonical(PROCESS_EVENT) == PROCESS_EVENT
    assert set(LEGACY.values()) == {DRAIN_INBOX, PROCESS_EVENT, RUN_EXECUTION}
