"""Sync replies: the ingest request waits for a worker's ``reply`` step.

The waiting request registers a short-lived ``waiting`` key before the event is queued,
then pops the reply list with BLPOP — it holds neither a database connection nor a busy
loop. A worker publishes only while someone waits (atomically, in Lua), so a reply step
knows whether its answer was delivered (``steps.<id>.delivered``); one published after
the caller gave up is refused, and a later step can post the answer elsewhere (Slack's
``response_url``). When no matching rule can reply any more (none has a reply step, or
its chain ended before the reply), the worker publishes a *no reply* marker so the
caller gets the fallback at once instead of waiting out the deadline (when that is
the case is decided in ``engine.run.release``).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

log = logging.getLogger(__name__)

REPLY_TTL_S = 120
WAIT_SLICE_S = 5.0
NO_REPLY = "__no_reply__"

# KEYS: waiting, replies; ARGV: payload, ttl.  Push only while the caller waits.
_PUBLISH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""
# KEYS: waiting, replies.  Give up: stop accepting, but take a reply that just arrived.
_GIVE_UP = """
redis.call('DEL', KEYS[1])
return redis.call('LPOP', KEYS[2])
"""


def reply_key(event_id: str) -> str:
    return f"hookwise:reply:{event_id}"


def waiting_key(event_id: str) -> str:
    return f"hookwise:waiting:{event_id}"


class Waiter:
    """Created *before* the event is queued, so no reply can come before it listens."""

    def __init__(self, conn: redis.Redis, event_id: str, timeout_s: float):
        self.conn = conn
        self.event_id = event_id
        self.timeout_s = timeout_s
        conn.set(waiting_key(event_id), "1", px=int((timeout_s + 1) * 1000))

    def wait(self) -> dict[str, Any] | None:
        """The first reply, or None (deadline passed, or no rule will reply)."""
        keys = [waiting_key(self.event_id), reply_key(self.event_id)]
        deadline = time.monotonic() + self.timeout_s
        raw = None
        try:
            # BLPOP in slices shorter than the client's socket timeout (10 s)
            while raw is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                got = self.conn.blpop([keys[1]], timeout=max(min(left, WAIT_SLICE_S), 0.01))
                if got:
                    raw = got[1]
                    self.conn.delete(keys[0])
            if raw is None:
                raw = self.conn.eval(_GIVE_UP, 2, *keys)
        except redis.RedisError:
            try:  # stop accepting replies, so none is reported delivered to nobody
                self.conn.delete(keys[0])
            except redis.RedisError:
                pass
            return None
        if not raw:
            return None
        reply = json.loads(raw)
        return None if reply.get(NO_REPLY) else reply


def publish(conn: redis.Redis, event_id: str, reply: dict[str, Any]) -> bool:
    """Hand ``reply`` to the waiting caller; False when nobody waits (any more)."""
    keys = [waiting_key(event_id), reply_key(event_id)]
    return bool(conn.eval(_PUBLISH, 2, *keys, json.dumps(reply), REPLY_TTL_S))


def publish_no_reply(conn: redis.Redis, event_id: str) -> None:
    """Tell a waiting caller that no reply will come (it answers the fallback now)."""
    publish(conn, event_id, {NO_REPLY: True})
