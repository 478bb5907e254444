"""Executions whose next turn could not be queued because Redis was away.

A chain that schedules a retry or a delay while Redis does not answer keeps the
execution id here, in its own process, and the worker's scheduler thread queues it
again (``flush``) on its first tick with Redis back: a blip of Redis costs the retry
about a second, not the sweeper's idle threshold. If the process dies first, the
sweeper still finds the execution (it is ``waiting`` in the database), so nothing kept
here is the only record of anything.
"""

from __future__ import annotations

import threading
import time

from rq import Queue

from engine.broker.queue import enqueue_execution
from engine.errors import QueueError

_lock = threading.Lock()
# (queue name, execution id) -> when its turn is due (time.time()); keyed by queue so a
# process with several runtimes (tests) flushes each turn onto the queue it belongs to
_due: dict[tuple[str, str], float] = {}


def defer(queue: Queue, execution_id: str, delay_s: float) -> None:
    """Remember that ``execution_id`` must run on ``queue`` in ``delay_s``; the earliest
    turn wins."""
    due = time.time() + max(0.0, delay_s)
    key = (queue.name, execution_id)
    with _lock:
        _due[key] = min(due, _due.get(key, due))


def pending(queue: Queue) -> int:
    with _lock:
        return sum(1 for name, _ in _due if name == queue.name)


def flush(queue: Queue) -> int:
    """Queue what was deferred, each with what is left of its delay; stops at the first
    Redis error (still away: the next tick tries again). Answers how many were queued."""
    with _lock:
        items = sorted(((k, due) for k, due in _due.items() if k[0] == queue.name),
                       key=lambda kv: kv[1])
    queued = 0
    for key, due in items:
        try:
            enqueue_execution(queue, key[1], delay_s=max(0.0, due - time.time()))
        except QueueError:
            break
        with _lock:
            if _due.get(key) == due:
                del _due[key]
        queued += 1
    return queued
