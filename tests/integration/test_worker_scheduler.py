"""The worker's scheduler thread: its lock lapses soon after the worker dies, so another
worker's scheduler moves due retries on within seconds (RQ's own lock lasts 61 s)."""

from __future__ import annotations

import time

from rq.scheduler import RQScheduler

from engine.work.worker import SCHEDULER_LOCK_TTL_S, start_scheduler


def test_the_scheduler_lock_is_held_briefly_and_taken_over_after_a_death(rt) -> None:  # type: ignore[no-untyped-def]
    key = RQScheduler.get_locking_key(rt.queue.name)
    stop = start_scheduler(rt)
    try:
        deadline = time.monotonic() + 5
        while rt.redis.get(key) is None:
            assert time.monotonic() < deadline, "the scheduler never took its lock"
            time.sleep(0.05)
        time.sleep(1.5)  # a heartbeat or two later, still short
        ttl = rt.redis.ttl(key)
        assert 0 < ttl <= SCHEDULER_LOCK_TTL_S, ttl
        holder = rt.redis.get(key)
    finally:
        stop.set()
    # a worker that dies (here: stops beating without releasing) leaves the lock to lapse;
    # another scheduler takes it once it has
    time.sleep(1.2)
    rt.redis.set(key, holder, ex=1)  # as if it had died holding it
    other = start_scheduler(rt)
    try:
        deadline = time.monotonic() + 6
        while rt.redis.get(key) in (None, holder):
            assert time.monotonic() < deadline, "no other scheduler took the lapsed lock"
            time.sleep(0.1)
    finally:
        other.set()


def test_a_stopping_worker_does_not_wait_a_minute_for_its_command_listener(rt) -> None:  # type: ignore[no-untyped-def]
    """RQ listens for worker commands with get_message(timeout=60), and redis-py 8's
    stop() waits for that thread: once the listener had read the unsubscribe reply, a
    worker's teardown hung for a minute (seen as 60 s tests in CI)."""
    import threading

    from engine.work.worker import make_worker

    worker = make_worker(rt)
    worker.subscribe()
    time.sleep(0.2)
    worker.pubsub.unsubscribe()
    time.sleep(0.5)  # the listener reads the reply, then waits for the next message
    stopper = threading.Thread(target=worker.unsubscribe, daemon=True)
    began = time.monotonic()
    stopper.start()
    stopper.join(timeout=5)
    assert not stopper.is_alive(), "the worker's listener held its stop up"
    assert time.monotonic() - began < 2
