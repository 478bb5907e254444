"""Per-destination circuit breaker, outgoing rate limit and slow-down, shared by every
worker process through Redis.

Before a call, ``admit`` answers in one round trip whether it may go now:

- **breaker**: after ``failures`` consecutive transient failures (connect errors,
  timeouts, 5xx) the destination is *paused* until a back-off passes (``BASE_PAUSE_S``,
  doubling per failed probe up to ``MAX_PAUSE_S``); then one call at a time is let
  through as a probe. A success closes it; a failed probe pauses it again. Steps that
  meet a paused destination wait (no attempt spent) and come back after the pause.
- **slow-down**: a 429 with Retry-After holds the destination for everyone until then.
- **concurrency** (configured ``concurrency``): one of the destination's slots, a lease
  that expires (``engine.outbound.leases``), is taken in the same round trip — verdict
  ``full`` when every slot is out.
- **rate limit** (configured ``rate_limit: {requests, per_s}``): a GCRA schedule with no
  burst, calls ``per_s / requests`` apart; a call whose turn is close
  (``reserve_within_s``) reserves it and waits for it in the thread; one further off is
  told when the next turn is, reserves nothing, and comes back then as a scheduled step
  (a reserved turn nobody used pushed every later one back: with held steps from two
  workers the schedule ran away and nothing was delivered).

The state is a hash per destination that exists only while it fails or is held, so a
healthy destination costs one read per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from engine.outbound.leases import SLOTS_KEY

BASE_PAUSE_S = 2.0
MAX_PAUSE_S = 120.0
PROBE_WAIT_S = 1.0  # others look again this soon while a probe is out
STATE_TTL_S = 86_400
KEY = "hookwise:dest:{}"
RATE_KEY = "hookwise:dest-rate:{}"

# KEYS: state, rate, slots. ARGV: interval_s (0: no limit), tolerance_s, probe_timeout_s,
# probe_wait_s, slot limit (0: none), lease id, lease ttl_s, reserve_within_s (a rate turn
# later than this is answered, not reserved).
# -> {verdict, until, since, error, slot}; verdict: ok | tracked | probe | paused | slowed |
# rate | full; slot '1' when a lease was taken (also with rate: the caller gives it back
# if it does not wait for its turn)
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local st = redis.call('HMGET', KEYS[1], 'open_until', 'hold_until', 'probing_until',
                      'since', 'error', 'failures')
local open_until = tonumber(st[1])
if open_until then
  if now < open_until then return {'paused', tostring(open_until), st[4] or '', st[5] or '', ''} end
  local probing = tonumber(st[3])
  if probing and now < probing then
    return {'paused', tostring(now + tonumber(ARGV[4])), st[4] or '', st[5] or '', ''}
  end
end
local hold = tonumber(st[2])
if not open_until and hold and now < hold then
  return {'slowed', tostring(hold), '', st[5] or '', ''}
end
local slot = ''
local limit = tonumber(ARGV[5])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= limit then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {'full', first[2] or '', '', '', ''}
  end
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[6])
  redis.call('PEXPIRE', KEYS[3], math.ceil(tonumber(ARGV[7]) * 2000))
  slot = '1'
end
if open_until then
  redis.call('HSET', KEYS[1], 'probing_until', tostring(now + tonumber(ARGV[3])))
  return {'probe', '', st[4] or '', st[5] or '', slot}
end
local interval = tonumber(ARGV[1])
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then tat = now end
  local at = tat - tonumber(ARGV[2])
  if at < now then at = now end
  -- a turn further off than the caller waits for is not reserved: a held step that
  -- came back would reserve yet another one, and the schedule ran away from them all
  if at - now > tonumber(ARGV[8]) then return {'rate', tostring(at), '', '', slot} end
  redis.call('SET', KEYS[2], tostring(tat + interval), 'PX',
             math.ceil((tat + interval - now) * 1000) + 1000)
  if at > now then return {'rate', tostring(at), '', '', slot} end
end
if st[6] then return {'tracked', '', '', '', slot} end
return {'ok', '', '', '', slot}
"""

# KEYS: state. ARGV: threshold, error, base_s, max_s, ttl_s. -> 1 when it (re)opened
_FAILED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local probing = redis.call('HGET', KEYS[1], 'probing_until')
local is_open = redis.call('HEXISTS', KEYS[1], 'open_until') == 1
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'error', ARGV[2], 'last_failure', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[5])
if is_open and not probing then return 0 end
if not is_open and failures < tonumber(ARGV[1]) then return 0 end
local pause = tonumber(ARGV[3])
if probing then
  pause = math.min(tonumber(redis.call('HGET', KEYS[1], 'pause') or ARGV[3]) * 2,
                   tonumber(ARGV[4]))
end
if not is_open then redis.call('HSET', KEYS[1], 'since', tostring(now)) end
redis.call('HSET', KEYS[1], 'open_until', tostring(now + pause), 'pause', tostring(pause))
redis.call('HDEL', KEYS[1], 'probing_until')
return 1
"""

# KEYS: state. ARGV: seconds, error, ttl_s
_SLOW_DOWN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local till = now + tonumber(ARGV[1])
local hold = tonumber(redis.call('HGET', KEYS[1], 'hold_until') or '0')
if till > hold then redis.call('HSET', KEYS[1], 'hold_until', tostring(till)) end
redis.call('HSET', KEYS[1], 'error', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Admission:
    """``admit``'s answer: go now (``wait_until`` None), or not before ``wait_until``
    (epoch seconds) for ``reason``. ``report``: tell the guard how the call went."""

    verdict: str
    wait_until: float | None = None
    reason: str | None = None
    lease: str | None = None  # the concurrency slot taken with it, to give back

    @property
    def report(self) -> bool:
        return self.verdict in ("tracked", "probe")


class DestinationGuard:
    """Breaker, slow-down and rate limit of every destination (one Redis client)."""

    def __init__(self, conn: redis.Redis):
        self.conn = conn
        self._admit = conn.register_script(_ADMIT)
        self._failed = conn.register_script(_FAILED)
        self._slow_down = conn.register_script(_SLOW_DOWN)

    def admit(self, destination: str, *, requests: int | None = None,
              per_s: float | None = None, probe_timeout_s: float = 10.0,
              slots: int | None = None, lease: str | None = None,
              lease_ttl_s: float = 30.0, reserve_within_s: float = 1e9) -> Admission:
        """``slots``/``lease``: also take one of the destination's ``slots`` (its
        configured concurrency, across every worker) as ``lease`` — in the same round
        trip; ``Admission.lease`` says whether it was taken."""
        interval = (per_s / requests) if requests and per_s else 0.0
        # no burst tolerance: calls go one interval apart, so no window of per_s seconds
        # ever holds more than `requests` (a tolerance of per_s - interval let a burst of
        # `requests` through and then kept the pace: 2×requests - 1 in one window)
        tolerance = 0.0
        limit = slots if slots and lease else 0
        verdict, until, since, error, slot = (_text(x) for x in self._admit(
            keys=[KEY.format(destination), RATE_KEY.format(destination),
                  SLOTS_KEY.format(destination)],
            args=[interval, tolerance, probe_timeout_s, PROBE_WAIT_S, limit, lease or "",
                  lease_ttl_s, reserve_within_s]))
        taken = lease if slot == "1" else None
        if verdict == "paused":
            return Admission(verdict, float(until), _paused_reason(destination, since, error))
        if verdict == "slowed":
            return Admission(verdict, float(until), f"{destination} asked to slow down "
                             f"(429 Retry-After): {error}")
        if verdict == "full":
            return Admission(verdict, float(until) if until else None,
                             f"destination {destination} is at its concurrency of {slots} "
                             f"(calls in flight, all workers together)")
        if verdict == "rate":
            return Admission(verdict, float(until), f"rate limit of {destination}: "
                             f"{requests} per {per_s:g} s", lease=taken)
        return Admission(verdict, lease=taken)

    def succeeded(self, destination: str) -> None:
        """The call got an answer: close the breaker, forget the failures."""
        self.conn.delete(KEY.format(destination))

    def failed(self, destination: str, error: str, *, threshold: int) -> bool:
        """A transient failure; answers whether the destination is now paused."""
        return bool(self._failed(keys=[KEY.format(destination)],
                                 args=[threshold, error[:500], BASE_PAUSE_S, MAX_PAUSE_S,
                                       STATE_TTL_S]))

    def slow_down(self, destination: str, seconds: float, error: str) -> None:
        self._slow_down(keys=[KEY.format(destination)],
                        args=[seconds, error[:500], STATE_TTL_S])

    def resume(self, destination: str) -> bool:
        """Close the breaker and drop any hold by hand; False when there was none."""
        return bool(self.conn.delete(KEY.format(destination)))

    def states(self) -> list[dict[str, Any]]:
        """Every destination that fails or is held: state, since, failures, last error."""
        out = []
        now = _redis_now(self.conn)
        for key in self.conn.scan_iter(match=KEY.format("*"), count=500):
            raw = {_text(k): _text(v) for k, v in self.conn.hgetall(key).items()}
            if not raw:
                continue
            dest = _text(key)[len(KEY.format("")):]
            state = describe(dest, raw, now)
            if state["state"] != "ok":
                out.append(state)
        return sorted(out, key=lambda d: d["destination"])


def describe(destination: str, raw: dict[str, str], now: float) -> dict[str, Any]:
    open_until = float(raw["open_until"]) if "open_until" in raw else None
    hold = float(raw["hold_until"]) if "hold_until" in raw else None
    if open_until is not None:
        state = "probing" if "probing_until" in raw or now >= open_until else "paused"
    elif hold is not None and hold > now:
        state = "slowed"
    elif int(raw.get("failures", 0)):
        state = "failing"
    else:
        state = "ok"  # a hold that has passed
    return {"destination": destination, "state": state,
            "since": float(raw["since"]) if "since" in raw else None,
            "resumes_at": open_until if state == "paused" else hold if state == "slowed"
            else None,
            "failures": int(raw.get("failures", 0)), "last_error": raw.get("error")}


def _paused_reason(destination: str, since: str, error: str) -> str:
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(float(since), UTC).strftime("%Y-%m-%d %H:%M:%S UTC") \
        if since else "now"
    return f"destination {destination} paused since {when}: last error: {error}"


def _redis_now(conn: redis.Redis) -> float:
    seconds, micros = conn.time()  # type: ignore[misc]
    return float(seconds) + float(micros) / 1e6


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
