"""Per-source rate limits: a fixed window counter in Redis.

One INCR (+EXPIRE on the first hit) per request. When Redis is unreachable the request
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
            pipe.incr(key)
            pipe.expire(key, spec.per_s + 1, nx=True)
            count = pipe.execute()[0]
    except redis.RedisError:
        return None
    if count <= spec.requests:
        return None
    return max((window + 1) * spec.per_s - now, 0.001)
