"""A Hookwise worker: an RQ worker that does not fork per job.

It builds its Runtime once (database engine, HTTP pools, rule cache) and runs jobs in
process (``SimpleWorker``), with RQ's scheduler for delayed steps and retries. Jobs hand
chains to the process's delivery threads (``engine.run.dispatch.Dispatcher``,
``HOOKWISE_WORKER_CONCURRENCY`` of them) and return; a burst worker ends only once they
are idle, and a stopping worker lets the running chains finish first.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from rq import SimpleWorker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from engine import runtime
from engine.broker import deferred, liveness
from engine.run.chain import ChainRunner
from engine.run.dispatch import Dispatcher, Work
from engine.runtime import STOP_DELIVERY_S, Runtime
from engine.work import sweeper

log = logging.getLogger(__name__)

SCHEDULER_INTERVAL_S = 1  # whole seconds: RQ derives its lock TTL from it
LOCK_RETRY_S = 2.0  # how often a worker without the scheduler lock tries for it
# RQ keeps its scheduler lock for interval + 60 s: a SIGKILLed worker's lock would hold
# every due retry and delay back for a minute. The holder shortens it after each
# heartbeat (only while it still owns it), so another worker takes over within this.
SCHEDULER_LOCK_TTL_S = 10
_SHORTEN_LOCK = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                 "return redis.call('expire', KEYS[1], ARGV[2]) end return 0")
RESTART_AFTER_S = (0.5, 5.0)  # first and longest pause before the loop starts again
BURST_POLL_S = 0.05
PUBSUB_POLL_S = 0.5  # how long a stopping worker may wait for its command listener


class HookwiseWorker(SimpleWorker):
    """RQ's in-process worker, told apart from its own stop: RQ's loop also ends when
    Redis vanishes in the middle of a job's bookkeeping, and that must not end the
    process. Its reconnect back-off is capped low so an outage costs seconds."""

    max_connection_wait_time = 5.0

    def __init__(self, *args, dispatcher: Dispatcher | None = None,  # type: ignore[no-untyped-def]
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stop_requested = False
        self.dispatcher = dispatcher

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):  # type: ignore[no-untyped-def]
        """In burst mode the queue may run dry while delivery threads still work (and
        queue more): wait for them before calling it done."""
        while True:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            if result is not None or timeout is not None or self.dispatcher is None:
                return result
            if not self.dispatcher.busy:
                return None
            self.dispatcher.wait_idle(BURST_POLL_S)

    def request_stop(self, signum, frame) -> None:  # type: ignore[no-untyped-def]
        self.stop_requested = True
        super().request_stop(signum, frame)

    def subscribe(self) -> None:
        """RQ's, listening in PUBSUB_POLL_S slices instead of 60 s. redis-py 8's
        ``PubSubWorkerThread.stop()`` waits for the listening thread to end, and when the
        thread had already read the unsubscribe reply it sat in ``get_message(timeout=60)``:
        every worker stop (a deploy's SIGTERM, a test's burst run) could hang a minute."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=PUBSUB_POLL_S, daemon=True,
            exception_handler=self._pubsub_exception_handler)

    def teardown(self) -> None:
        try:
            super().teardown()
        except redis.RedisError:  # cannot say goodbye to Redis: at least stop listening
            if self.pubsub_thread:
                self.pubsub_thread.stop()
                self.pubsub_thread.join(timeout=1)


def start_delivery(rt: Runtime) -> Dispatcher:
    """The process's delivery threads (built once), wired to a chain runner that takes
    each webhook step's destination slot from them."""
    if rt.dispatcher is None:
        runner = ChainRunner(rt)

        def run(work: Work) -> str | None:
            return runner.run(work.execution_id, loaded=work.loaded,
                              first_claimed=work.first_claimed).parked_on

        rt.dispatcher = runner.admitter.gate = Dispatcher(
            run, concurrency=rt.settings.worker_concurrency,
            share=rt.settings.destination_share)
    return rt.dispatcher


def make_worker(rt: Runtime, *, name: str | None = None) -> HookwiseWorker:
    runtime.install(rt)
    worker = HookwiseWorker(
        [rt.queue], connection=rt.redis, serializer=JSONSerializer, name=name,
        maintenance_interval=60, dispatcher=start_delivery(rt),
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
                if deferred.pending(rt.queue):  # turns this process could not queue (Redis away)
                    deferred.flush(rt.queue)
                if not sched.acquired_locks and time.monotonic() - last_try > LOCK_RETRY_S:
                    last_try = time.monotonic()
                    sched.acquire_locks()
                if sched.acquired_locks:
                    sched.heartbeat()
                    for name in sched.acquired_locks:
                        rt.redis.eval(_SHORTEN_LOCK, 1, sched.get_locking_key(name), sched.name,
                                      SCHEDULER_LOCK_TTL_S)
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
    """Work until stopped (or, with ``burst``, until the queue is empty).

    A Redis outage never ends a long-running worker: RQ's loop quits on an error it did
    not expect (Redis gone while it records a job's end, or at start), so the loop is
    started again, under a new name, once Redis answers. The job that was cut off is
    re-queued by the sweeper when the old name's heartbeat lapses."""
    stops = []
    if not burst:
        stops.append(sweeper.start_background(rt))
        if with_scheduler:
            stops.append(start_scheduler(rt))
    pause = RESTART_AFTER_S[0]
    try:
        while True:
            worker: HookwiseWorker | None = None
            beat: threading.Event | None = None
            did_work = False
            try:
                worker = make_worker(rt)  # registers with Redis
                beat = liveness.start_heartbeat(rt.redis, worker.name)
                did_work = worker.work(burst=burst, with_scheduler=burst and with_scheduler,
                                       logging_level=logging_level)
            except redis.RedisError as exc:
                log.warning("worker: Redis failed: %s", exc)
            finally:
                if beat is not None:
                    beat.set()
            if burst or (worker is not None and worker.stop_requested):
                return did_work
            log.warning("worker: its loop ended without a stop request; starting again "
                        "in %.1f s", pause)
            time.sleep(pause)
            if worker is not None and worker.stop_requested:  # a signal in the pause
                return did_work
            pause = min(pause * 2, RESTART_AFTER_S[1])
    finally:
        if rt.dispatcher is not None:
            if not rt.dispatcher.stop(timeout=STOP_DELIVERY_S):
                log.warning("worker: chains still running after %.0f s; the sweeper "
                            "resumes them", STOP_DELIVERY_S)
            rt.dispatcher = None
        for stop in stops:
            stop.set()
