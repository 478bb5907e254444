"""When to try a failed step again.

Webhook steps default to Svix's schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h);
email and db_write default to three attempts; other steps are not retried unless the
step says so. Every delay gets ±20% jitter, and a server's Retry-After is honoured
(never waiting less than it asks).
"""

from __future__ import annotations

import random

from rules.schema import RetrySpec

SVIX_SCHEDULE_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
DEFAULT_ATTEMPTS = {"email": 3, "db_write": 3, "state": 3}
DEFAULT_INITIAL_S = 5.0
JITTER = 0.2


def next_delay(
    spec: RetrySpec | None,
    step_type: str,
    attempt: int,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None when attempts are spent.

    ``attempt`` is the number of the attempt that just failed (1 for the first).
    """
    rnd = rng or random
    base: float
    if spec is None:
        if step_type == "webhook":
            if attempt > len(SVIX_SCHEDULE_S):
                return None
            base = SVIX_SCHEDULE_S[attempt - 1]
        else:
            if attempt >= DEFAULT_ATTEMPTS.get(step_type, 1):
                return None
            base = DEFAULT_INITIAL_S * (2 ** (attempt - 1))
    else:
        if attempt >= spec.max_attempts:
            return None
        if spec.backoff == "fixed":
            base = spec.initial_s
        else:
            base = spec.initial_s * (2 ** (attempt - 1))
        base = min(base, spec.max_s)
    delay = base * (1 + rnd.uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(delay, 0.0)
