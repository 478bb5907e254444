"""A Hookwise worker: an RQ worker that does not fork per job.

It builds its Runtime once (database engine, HTTP pools, rule cache) and runs jobs in
process (``SimpleWorker``), with RQ's scheduler for delayed steps and retries.
"""

from __future__ import annotations

import logging
import threading
import time

from rq import SimpleWorker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from engine import liveness, runtime, sweeper
from engine.runtime import Runtime

log = logging.getLogger(__name__)

SCHEDULER_INTERVAL_S = 1  # whole seconds: RQ derives its lock TTL from it
LOCK_RETRY_S = 15.0  # a dead worker's scheduler lock lapses after ~60 s


def make_worker(rt: Runtime, *, name: str | None = None) -> SimpleWorker:
    runtime.install(rt)
    worker = SimpleWorker(
        [rt.queue], connection=rt.redis, serializer=JSONSerializer, name=name,
        maintenance_interval=60,
    )
    rt.worker_name = worker.name
    return worker


def start_scheduler(rt: Runtime) -> threading.Event:
    """RQ's scheduler (moves due retries and delays onto the queue) as a daemon thread of
    this process — RQ's own forks a child process that outlives a SIGKILLed worker. One
    worker at a time holds the queue's scheduler lock; the others retry for it."""
    sched = RQScheduler([rt.queue], connection=rt.redis, serializer=JSONSerializer,
                        interval=SCHEDULER_INTERVAL_S)
    stop = threading.Event()

    def loop() -> None:
        last_try = 0.0
        while not stop.wait(SCHEDULER_INTERVAL_S):
            try:
                if not sched.acquired_locks and time.monotonic() - last_try > LOCK_RETRY_S:
                    last_try = time.monotonic()
                    sched.acquire_locks()
                if sched.acquired_locks:
                    sched.heartbeat()
                    sched.enqueue_scheduled_jobs()
            except Exception as exc:  # Redis away: try again next tick
                log.warning("scheduler: %s", exc)
        try:
            sched.release_locks()
        except Exception:
            pass

    threading.Thread(target=loop, name="hookwise-scheduler", daemon=True).start()
    return stop


def run_worker(rt: Runtime, *, burst: bool = False, with_scheduler: bool = True,
               logging_level: str = "WARNING") -> bool:
    """Work until stopped (or, with ``burst``, until the queue is empty)."""
    worker = make_worker(rt)
    stops = [liveness.start_heartbeat(rt.redis, worker.name)]
    if not burst:
        stops.append(sweeper.start_background(rt))
        if with_scheduler:
            stops.append(start_scheduler(rt))
    try:
        return worker.work(burst=burst, with_scheduler=burst and with_scheduler,
                           logging_level=logging_level)
    finally:
        for stop in stops:
            stop.set()
