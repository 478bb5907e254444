"""The name of every RQ job Hookwise queues, in one table.

RQ stores a job's function as a dotted import path and imports it when the job runs, so
these strings are a contract with every job already waiting in Redis: moving a job
function means adding its old path to ``LEGACY`` (kept importable for one release) and
pointing the constant at the new one.
"""

from __future__ import annotations

from typing import Final

DRAIN_INBOX: Final = "engine.work.jobs.drain_inbox"  # drain one inbox shard (broker.inbox)
PROCESS_EVENT: Final = "engine.work.jobs.process_event"  # match one stored event, run chains
RUN_EXECUTION: Final = "engine.work.jobs.run_execution"  # run or resume one execution

# Paths of jobs queued by Hookwise 0.1 (before engine/ had stage packages) -> today's job.
# Their modules (engine/inbox.py, engine/tasks.py) re-export the job functions until 0.3.
LEGACY: Final[dict[str, str]] = {
    "engine.inbox.drain_inbox": DRAIN_INBOX,
    "engine.tasks.process_event": PROCESS_EVENT,
    "engine.tasks.run_execution": RUN_EXECUTION,
}


def canonical(func_name: str | None) -> str | None:
    """A stored job's function as today's constant (an old path maps to its successor)."""
    return LEGACY.get(func_name, func_name) if func_name else func_name
