"""Which workers are alive: each worker process refreshes a short-lived Redis key from a
background thread, so a worker that was SIGKILLed is known dead within seconds (RQ's
own worker keys live for minutes). Steps and jobs record the worker that took them; the
sweeper frees what a dead worker held."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import redis

HEARTBEAT_TTL_S = 10
HEARTBEAT_EVERY_S = 3.0

log = logging.getLogger(__name__)


def _key(name: str) -> str:
    return f"hookwise:alive:{name}"


def beat(conn: redis.Redis, name: str) -> None:
    conn.set(_key(name), "1", ex=HEARTBEAT_TTL_S)


def start_heartbeat(conn: redis.Redis, name: str) -> threading.Event:
    """Refresh ``name``'s key every few seconds until the returned event is set."""
    stop = threading.Event()

    def once() -> None:
        try:
            beat(conn, name)
        except redis.RedisError as exc:  # Redis away: the next beat tries again
            log.warning("heartbeat failed: %s", exc)

    def loop() -> None:
        while not stop.wait(HEARTBEAT_EVERY_S):
            once()

    once()  # before the first job is taken

    threading.Thread(target=loop, name="hookwise-heartbeat", daemon=True).start()
    return stop


def alive(conn: redis.Redis, names: Iterable[str]) -> set[str]:
    """The subset of ``names`` whose heartbeat is current."""
    names = [n for n in set(names) if n]
    if not names:
        return set()
    with conn.pipeline() as pipe:
        for n in names:
            pipe.exists(_key(n))
        return {n for n, ok in zip(names, pipe.execute(), strict=True) if ok}
