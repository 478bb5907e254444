"""Login throttling: failed logins counted per account and per client address in Redis
(so every web process sees the same counts), with exponential back-off.

After ``limit`` failures within ``window_s`` (the window restarts at every failure), the
account (or address) is locked for ``base_s``, then twice as long after each further
failure, up to ``max_s``. While locked, every login for it (the right password too) is
answered 429 with ``Retry-After`` and the password is not even checked. A successful
login clears the account's count (never the address's: one valid account must not reset
an address that is guessing others). Emails are hashed before they become Redis keys.

Defaults are in ``DEFAULTS``; ``app.config["LOGIN_THROTTLE"]`` (a dict) overrides them.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any

from flask import current_app
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

DEFAULTS: dict[str, dict[str, float]] = {
    "account": {"limit": 5, "window_s": 900, "base_s": 30, "max_s": 3600},
    "address": {"limit": 30, "window_s": 900, "base_s": 30, "max_s": 3600},
}
PREFIX = "hookwise:login"
FAILURES_TOTAL = f"{PREFIX}:failures-total"  # counters read by GET /metrics
THROTTLED_TOTAL = f"{PREFIX}:throttled-total"

# KEYS: failure count, lock; ARGV: limit, base_s, max_s, window_s. Answers the lock (s).
_FAIL = """
local n = redis.call('INCR', KEYS[1])
local limit = tonumber(ARGV[1])
local lock = 0
if n >= limit then
  lock = math.ceil(math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (n - limit)))
  redis.call('SET', KEYS[2], '1', 'EX', lock)
end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[4])) + lock)
return lock
"""


@dataclass(frozen=True)
class Locked:
    kind: str  # "account" or "address"
    retry_after: int  # seconds


def _config(kind: str) -> dict[str, float]:
    over = current_app.config.get("LOGIN_THROTTLE") or {}
    return {**DEFAULTS[kind], **over.get(kind, {})}


def _ident(kind: str, value: str) -> str:
    if kind == "account":
        value = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return value or "-"


def _keys(kind: str, value: str) -> tuple[str, str]:
    ident = _ident(kind, value)
    return f"{PREFIX}:fail:{kind}:{ident}", f"{PREFIX}:lock:{kind}:{ident}"


class LoginThrottle:
    def __init__(self, redis: Any):
        self.redis = redis

    def locked(self, email: str, address: str) -> Locked | None:
        """The longest lock on this account or address, if any."""
        pairs = [("account", email), ("address", address)]
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for kind, value in pairs:
                    pipe.pttl(_keys(kind, value)[1])
                ttls = pipe.execute()
        except RedisError as exc:  # logins keep working (unthrottled) while Redis is down
            log.error("login throttle unavailable (Redis: %s)", exc)
            return None
        worst: Locked | None = None
        for (kind, _), ttl in zip(pairs, ttls, strict=True):
            if ttl is not None and ttl > 0:
                seconds = max(1, math.ceil(ttl / 1000))
                if worst is None or seconds > worst.retry_after:
                    worst = Locked(kind, seconds)
        return worst

    def failed(self, email: str, address: str) -> Locked | None:
        """Count a failed login; the lock it started, if it started one."""
        script = self.redis.register_script(_FAIL)
        worst: Locked | None = None
        try:
            for kind, value in (("account", email), ("address", address)):
                cfg = _config(kind)
                lock = int(script(keys=list(_keys(kind, value)),
                                  args=[int(cfg["limit"]), cfg["base_s"], cfg["max_s"],
                                        cfg["window_s"]]))
                if lock and (worst is None or lock > worst.retry_after):
                    worst = Locked(kind, lock)
            self.redis.incr(FAILURES_TOTAL)
        except RedisError as exc:
            log.error("failed login not counted (Redis: %s)", exc)
        return worst

    def refused(self, email: str, address: str, lock: Locked) -> None:
        """Record a login answered 429 (a log line and the metrics counter)."""
        try:
            self.redis.incr(THROTTLED_TOTAL)
        except RedisError:
            pass
        log.warning("login throttled: %s locked for %d s (account sha256 %s, address %s)",
                    lock.kind, lock.retry_after, _ident("account", email), address or "-")

    def succeeded(self, email: str) -> None:
        try:
            self.redis.delete(_keys("account", email)[0])
        except RedisError as exc:
            log.error("login failures not cleared (Redis: %s)", exc)

    def totals(self) -> tuple[int, int]:
        """(failed logins, logins refused 429) since Redis started."""
        failed, throttled = self.redis.mget(FAILURES_TOTAL, THROTTLED_TOTAL)
        return int(failed or 0), int(throttled or 0)
