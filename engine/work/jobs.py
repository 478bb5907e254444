"""RQ job entry points: the one place that finds the process's Runtime.

Each job takes ids only, finds everything else in the database, and is safe to run
twice. Their dotted paths are named in ``engine.broker.jobs``; everything below gets the
Runtime passed in.
"""

from __future__ import annotations

from engine import runtime
from engine.run.batch import Submit, process_events, run_inline
from engine.run.dispatch import Work
from engine.runtime import Runtime
from engine.work.drain import drain


def submitter(rt: Runtime) -> Submit:
    """Where this process runs chains: its delivery threads in a worker
    (``engine.work.worker.start_delivery``), else inline."""
    return rt.dispatcher.submit if rt.dispatcher is not None else run_inline(rt)


def drain_inbox(shard: int) -> int:
    """Drain one inbox shard (see ``engine.broker.inbox``)."""
    rt = runtime.current()
    return drain(rt, shard, submitter(rt))


def process_event(event_id: str) -> dict[str, object]:
    """Match a stored event against the rules and run each matching rule's chain."""
    rt = runtime.current()
    return process_events(rt, [event_id], submit=submitter(rt))[0]


def run_execution(execution_id: str) -> None:
    """Run (or resume) one execution's chain."""
    rt = runtime.current()
    submitter(rt)(Work(execution_id))
