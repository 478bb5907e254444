"""RQ job entry points: the one place that finds the process's Runtime.

Each job takes ids only, finds everything else in the database, and is safe to run
twice. Their dotted paths are named in ``engine.broker.jobs``; everything below gets the
Runtime passed in.
"""

from __future__ import annotations

from engine import runtime
from engine.run.batch import process_events
from engine.run.chain import ChainRunner
from engine.work.drain import drain


def drain_inbox(shard: int) -> int:
    """Drain one inbox shard (see ``engine.broker.inbox``)."""
    return drain(runtime.current(), shard)


def process_event(event_id: str) -> dict[str, object]:
    """Match a stored event against the rules and run each matching rule's chain."""
    return process_events(runtime.current(), [event_id])[0]


def run_execution(execution_id: str) -> str | None:
    """Run (or resume) one execution's chain."""
    status = ChainRunner(runtime.current()).run(execution_id)
    return status.value if status else None
