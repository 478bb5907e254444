"""Per-source rate limits (engine/ingress/ratelimit.py) on every Redis Hookwise runs on: the
embedded redis-server (6.2, what `hookwise serve` starts) and the configured one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.broker.embedded import EmbeddedRedis
from engine.ingress import ratelimit
from rules.schema import RateLimitSpec


@pytest.fixture(scope="module")
def embedded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis62")))
    yield srv.start()
    srv.stop()


@pytest.fixture(params=["embedded", "configured"])
def conn(request, embedded_url: str, redis_url: str) -> Iterator[redis.Redis]:  # type: ignore[no-untyped-def]
    c = redis.Redis.from_url(embedded_url if request.param == "embedded" else redis_url)
    c.flushdb()
    yield c
    c.flushdb()
    c.close()


def test_the_window_lets_n_through_then_says_how_long_to_wait(conn: redis.Redis) -> None:
    spec = RateLimitSpec(requests=3, per_s=60)
    waits = [ratelimit.check(conn, "src", spec) for _ in range(5)]
    assert waits[:3] == [None, None, None]
    assert all(w is not None and 0 < w <= 60 for w in waits[3:])
    [key] = conn.keys("hookwise:rl:src:*")
    assert 0 < conn.ttl(key) <= 61  # the counter expires with its window
    assert ratelimit.check(conn, "other", spec) is None  # per source


def test_redis_unreachable_lets_requests_through() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert ratelimit.check(dead, "src", RateLimitSpec(requests=1, per_s=1)) is None
