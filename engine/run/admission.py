"""What an outgoing call passes before it goes: its destination's breaker, slow-down and
rate limit (shared by every worker, ``engine.outbound.guard``), its share of this
worker's delivery threads (``engine.run.dispatch``) and, for a destination configured
with ``concurrency``, one of its slots across every worker and host
(``engine.outbound.leases``: taken in the guard's round trip, given back in one more).

``admit`` answers a ``Ticket`` (go now; ``release`` it after the call), a ``Hold`` (the
step waits until then, no attempt spent) or ``Parked`` (no thread share free: the chain
waits for one). ``report`` tells the breaker how the call went.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from engine.errors import ActionError, ConfigError
from engine.outbound import leases
from engine.outbound.guard import Admission, DestinationGuard
from engine.outbound.leases import LeaseBook
from engine.runtime import Runtime
from rules.schema import DestinationSpec, dump_destination

log = logging.getLogger(__name__)

INLINE_WAIT_S = 1.0  # a rate-limit turn this close is waited for in the thread
# a destination Redis called healthy is not asked again for this long (by this process):
# a pause another worker decided is seen that much later; a local failure asks at once
HEALTHY_FOR_S = 1.0
DEFAULT_BREAKER_FAILURES = 5


class Gate(Protocol):
    """Slots per destination (``engine.run.dispatch.Dispatcher``)."""

    def enter(self, destination: str, limit: int | None = None) -> bool: ...

    def leave(self, destination: str) -> None: ...


@dataclass(frozen=True)
class Ticket:
    destination: str
    spec: DestinationSpec | None
    admission: Admission
    in_gate: bool
    lease: str | None = None  # a concurrency slot of the destination, across workers


@dataclass(frozen=True)
class Hold:
    until: float  # epoch seconds
    reason: str


@dataclass(frozen=True)
class Parked:
    """The destination has no free share: the chain waits for one, its step unclaimed."""

    destination: str


class Admitter:
    def __init__(self, rt: Runtime, gate: Gate | None = None):
        self.rt = rt
        self.gate = gate
        self._guard: DestinationGuard | None = None
        self._book: LeaseBook | None = None
        self._healthy: dict[str, float] = {}  # destination -> until (monotonic)

    @property
    def guard(self) -> DestinationGuard | None:
        if self._guard is None:
            try:
                self._guard = DestinationGuard(self.rt.redis)
            except Exception:  # no Redis configured: calls go unguarded
                return None
        return self._guard

    @property
    def book(self) -> LeaseBook | None:
        if self._book is None and self.guard is not None:
            self._book = LeaseBook(self.guard.conn)
        return self._book

    def admit(self, destination: str) -> Ticket | Hold | Parked:
        spec = self.rt.catalog.destination(destination)
        if spec is not None and spec.concurrency and self.guard is not None:
            return self._admit_capped(destination, spec, spec.concurrency)
        admission = self._ask(destination, spec)
        if admission.wait_until is not None:
            wait = admission.wait_until - time.time()
            if admission.verdict != "rate" or wait > INLINE_WAIT_S:
                return Hold(admission.wait_until, admission.reason or "destination held")
        in_gate = False
        if self.gate is not None:
            if not self.gate.enter(destination, spec.concurrency if spec else None):
                return Parked(destination)
            in_gate = True
        if admission.wait_until is not None:  # our reserved rate-limit turn, close by
            time.sleep(max(admission.wait_until - time.time(), 0))
        return Ticket(destination, spec, admission, in_gate)

    def _admit_capped(self, destination: str, spec: DestinationSpec,
                      slots: int) -> Ticket | Hold | Parked:
        """A configured concurrency: this worker's share first (parked when in use, as
        any destination), then one of the destination's slots across every worker, taken
        with the breaker and rate check in one round trip. No slot free: wait in the
        thread — woken by a slot given back here, or a jittered retry for one given back
        elsewhere — up to ``leases.WAIT_S``, then hold the step a moment."""
        if self.gate is not None and not self.gate.enter(destination, slots):
            return Parked(destination)
        book = self.book
        assert book is not None
        rate = spec.rate_limit
        deadline = time.monotonic() + leases.WAIT_S
        retry = leases.FIRST_RETRY_S
        while True:
            generation = book.generation(destination)
            lease = book.new_id()
            try:
                admission = self.guard.admit(  # type: ignore[union-attr]
                    destination, requests=rate.requests if rate else None,
                    per_s=rate.per_s if rate else None, slots=slots, lease=lease,
                    lease_ttl_s=book.ttl_s, reserve_within_s=INLINE_WAIT_S)
            except redis.RedisError as exc:  # deliver rather than stall on the guard's store
                log.warning("destination guard unavailable (%s); %s goes unguarded "
                            "(this worker's share only)", exc, destination)
                admission = Admission("ok")
            if admission.verdict != "full":
                break
            left = deadline - time.monotonic()
            if left <= 0:
                self._leave(destination)
                return Hold(time.time() + random.uniform(0.2, 1.0),
                            admission.reason or f"{destination} at its concurrency")
            book.wait(destination, generation, min(retry * random.uniform(0.5, 1.5), left))
            retry = min(retry * 2, leases.MAX_RETRY_S)
        if admission.lease is not None:
            book.took(destination, admission.lease)
        if admission.wait_until is not None:
            wait = admission.wait_until - time.time()
            if admission.verdict != "rate" or wait > INLINE_WAIT_S:
                if admission.lease is not None:
                    book.give_back(destination, admission.lease)
                self._leave(destination)
                return Hold(admission.wait_until, admission.reason or "destination held")
            time.sleep(max(wait, 0))  # our reserved rate-limit turn, close by
        return Ticket(destination, spec, admission, self.gate is not None,
                      lease=admission.lease)

    def _leave(self, destination: str) -> None:
        if self.gate is not None:
            self.gate.leave(destination)

    def release(self, ticket: Ticket) -> None:
        if ticket.lease is not None and self._book is not None:
            self._book.give_back(ticket.destination, ticket.lease)
        if ticket.in_gate and self.gate is not None:
            self.gate.leave(ticket.destination)

    def report(self, ticket: Ticket, error: ActionError | None) -> None:
        """After the call: a transient failure counts towards the breaker (a 429 with
        Retry-After slows the destination down for everyone instead); an answer closes
        a breaker that was counting."""
        guard = self.guard
        if guard is None:
            return
        try:
            if error is None or not error.transient:
                if ticket.admission.report:
                    guard.succeeded(ticket.destination)
                return
            self._healthy.pop(ticket.destination, None)
            status = (error.output or {}).get("status")
            if status == 429 and error.retry_after:
                guard.slow_down(ticket.destination, error.retry_after, str(error))
                return
            threshold = (ticket.spec.breaker.failures if ticket.spec
                         else DEFAULT_BREAKER_FAILURES)
            if guard.failed(ticket.destination, str(error), threshold=threshold):
                log.warning("destination %s paused: %s", ticket.destination, error)
        except redis.RedisError as exc:
            log.warning("destination guard: %s", exc)

    def _ask(self, destination: str, spec: DestinationSpec | None) -> Admission:
        guard = self.guard
        if guard is None:
            return Admission("ok")
        rate = spec.rate_limit if spec else None
        if rate is None and self._healthy.get(destination, 0.0) > time.monotonic():
            return Admission("ok")
        try:
            admission = guard.admit(destination, requests=rate.requests if rate else None,
                                    per_s=rate.per_s if rate else None,
                                    reserve_within_s=INLINE_WAIT_S)
            if admission.verdict == "ok" and rate is None:
                self._healthy[destination] = time.monotonic() + HEALTHY_FOR_S
            return admission
        except redis.RedisError as exc:  # deliver rather than stall on the guard's store
            log.warning("destination guard unavailable (%s); %s goes unguarded", exc,
                        destination)
            return Admission("ok")


def overview(rt: Runtime) -> list[dict[str, Any]]:
    """Every configured destination and every one that fails or is held, with its limits
    and its state (``ok`` | ``failing`` | ``paused`` | ``probing`` | ``slowed``); the
    state is null when Redis cannot be reached."""
    rows: dict[str, dict[str, Any]] = {}
    for row in rt.catalog.list_destinations():
        rows[row.host] = {"destination": row.host, "config": row.spec, "state": "ok",
                          "since": None, "resumes_at": None, "failures": 0,
                          "last_error": None}
    try:
        states = DestinationGuard(rt.redis).states()
    except (redis.RedisError, ConfigError) as exc:
        log.warning("destination states unavailable: %s", exc)
        for entry in rows.values():
            entry["state"] = None
        return list(rows.values())
    for state in states:
        configured = rt.catalog.destination(state["destination"])
        key = configured.host if configured is not None else state["destination"]
        if key in rows and rows[key]["state"] != "ok":  # a host entry covers several
            key = state["destination"]
        base = rows.get(key) or {"destination": state["destination"],
                                 "config": dump_destination(configured) if configured else None}
        rows[key] = {**base, **state}
    return sorted(rows.values(), key=lambda r: r["destination"])


def resume(rt: Runtime, destination: str) -> bool:
    """Close a destination's breaker and drop its holds by hand (its waiting steps run
    at their next check); False when it was not paused or held."""
    return DestinationGuard(rt.redis).resume(destination)
