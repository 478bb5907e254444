"""A destination's configured ``concurrency`` as a cap across every worker process and
host: a counting semaphore in Redis whose slots are *leases* that expire.

The slots of a destination are a sorted set (``hookwise:dest-slots:<destination>``):
member = a lease id, score = when the lease expires (Redis's clock, so hosts whose
clocks differ agree). A slot is taken in the same Lua round trip as the breaker and rate
check (``engine.outbound.guard.DestinationGuard.admit``: expired leases are dropped
first, then a lease is added if fewer than ``concurrency`` are held) and given back with
one more (``LeaseBook.give_back``). While a call is out its lease is renewed every third
of the TTL by one thread per process, so a long call keeps its slot; a worker that is
SIGKILLed, frozen or cut off stops renewing and its slots come back within the TTL.

A chain that finds every slot taken waits in its thread (its share of this worker's
threads bounds how many do): a slot given back in this process wakes it at once, one
given back elsewhere is found by a retry after a short jittered wait that doubles up to
``MAX_RETRY_S``; after ``WAIT_S`` the step is held (status ``waiting``) and comes back
a moment later.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections import Counter
from itertools import count

import redis

log = logging.getLogger(__name__)

SLOTS_KEY = "hookwise:dest-slots:{}"
DEFAULT_LEASE_S = 30.0
FIRST_RETRY_S = 0.02
MAX_RETRY_S = 0.25
WAIT_S = 5.0  # in the thread; then the step is held

# KEYS: slots. ARGV: lease id. -> 1 when the lease was still held
_GIVE_BACK = "return redis.call('ZREM', KEYS[1], ARGV[1])"

# KEYS: slots. ARGV: ttl_s, lease ids... -> how many were still held (renewed)
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local till = now + tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', till, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 2000))
return n
"""


def lease_ttl_s(env: dict[str, str] | os._Environ[str] | None = None) -> float:
    """``HOOKWISE_DESTINATION_LEASE_S`` (default 30): how long a slot of a SIGKILLed or
    cut-off worker stays taken."""
    env = os.environ if env is None else env
    raw = env.get("HOOKWISE_DESTINATION_LEASE_S")
    if not raw:
        return DEFAULT_LEASE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.5 <= value <= 3600:
        from engine.errors import ConfigError

        raise ConfigError(f"HOOKWISE_DESTINATION_LEASE_S: expected seconds between 0.5 and "
                          f"3600, got {raw!r}")
    return value


class LeaseBook:
    """The leases this process holds: renews them, gives them back, wakes its waiters."""

    def __init__(self, conn: redis.Redis, ttl_s: float | None = None):
        self.conn = conn
        self.ttl_s = lease_ttl_s() if ttl_s is None else ttl_s
        self._give_back = conn.register_script(_GIVE_BACK)
        self._renew = conn.register_script(_RENEW)
        self._prefix = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._ids = count()
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._held: dict[str, set[str]] = {}  # destination -> lease ids
        self._generation: Counter[str] = Counter()  # destination -> slots given back here
        self._renewer: threading.Thread | None = None
        self._tick = threading.Event()  # never set: the renewer's sleep

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def generation(self, destination: str) -> int:
        with self._lock:
            return self._generation[destination]

    def took(self, destination: str, lease: str) -> None:
        """``lease`` was granted: keep it alive until it is given back."""
        with self._lock:
            self._held.setdefault(destination, set()).add(lease)
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                                 name="hookwise-leases")
                self._renewer.start()

    def give_back(self, destination: str, lease: str) -> None:
        with self._lock:
            held = self._held.get(destination)
            if held is not None:
                held.discard(lease)
                if not held:
                    del self._held[destination]
        try:
            self._give_back(keys=[SLOTS_KEY.format(destination)], args=[lease])
        except redis.RedisError as exc:  # it expires within the TTL
            log.warning("could not give back a slot of %s: %s", destination, exc)
        with self._lock:
            self._generation[destination] += 1
            self._freed.notify_all()

    def wait(self, destination: str, generation: int, timeout: float) -> None:
        """Until a slot of ``destination`` is given back in this process (since
        ``generation``) or ``timeout`` passes."""
        with self._lock:
            self._freed.wait_for(lambda: self._generation[destination] != generation,
                                 timeout)

    def held(self, destination: str) -> int:
        with self._lock:
            return len(self._held.get(destination, ()))

    def _renew_loop(self) -> None:
        while True:
            with self._lock:
                held = {d: sorted(ls) for d, ls in self._held.items() if ls}
            if held:
                try:
                    pipe = self.conn.pipeline(transaction=False)
                    for dest, leases in held.items():
                        self._renew(keys=[SLOTS_KEY.format(dest)], args=[self.ttl_s, *leases],
                                    client=pipe)
                    pipe.execute()
                except redis.RedisError as exc:
                    log.warning("could not renew destination slots: %s", exc)
            self._tick.wait(self.ttl_s / 3)
