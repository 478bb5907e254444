"""Per-source rate limits: a fixed window counter in Redis.

One pipelined SET NX EX + INCR per request (not EXPIRE NX, which needs Redis 7: the
embedded redis-server is 6.2). When Redis is unreachable the request
is let through: a rate limit must never be the reason an event is lost.
"""

from __future__ import annotations

import time

import redis

from rules.schema import RateLimitSpec


def check(conn: redis.Redis, slug: str, spec: RateLimitSpec) -> float | None:
    """None when the request may pass; else the seconds until the window reopens."""
    now = time.time()
    window = int(now // spec.per_s)
    key = f"hookwise:rl:{slug}:{window}"
    try:
        with conn.pipeline() as pipe:
            pipe.set(key, 0, ex=spec.per_s + 1, nx=True)
            pipe.incr(key)
            count = pipe.execute()[1]
    except redis.RedisError:
        return None
    if count <= spec.requests:
        return None
    return max((window + 1) * spec.per_s - now, 0.001)
