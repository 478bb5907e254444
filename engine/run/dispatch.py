"""Many executions in flight per worker process, with a fair share per destination.

A receiver answers in 0.1–2 s and sometimes hangs; a worker that waited on each call
would deliver ``workers ÷ latency`` steps a second, and one hanging endpoint would stall
every rule. The ``Dispatcher`` runs chains on ``concurrency`` delivery threads instead
(each execution on one thread at a time, so its steps stay strictly in order; each step
still claimed and recorded on its own, so a crash resumes where it was).

A destination (scheme + host + port) may hold at most ``share`` of the threads in calls
at once. A chain whose next call would exceed that is *parked*: it gives its thread back
and waits, by id, until a call to that destination ends — so a slow or hanging
destination only ever holds its share, and deliveries elsewhere go on.

``submit`` blocks while twice ``concurrency`` executions are queued or running
(back-pressure for the inbox drain). An execution submitted again while it is queued,
running or parked (a sweeper's duplicate job) is dropped: the copy in hand will run.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.05


@dataclass(frozen=True)
class Work:
    """One execution to run; ``loaded``/``first_claimed`` as ``ChainRunner.run`` takes."""

    execution_id: str
    loaded: Any = None
    first_claimed: bool = False


# runs one Work; answers the destination it must wait for (parked), or None
Runner = Callable[[Work], "str | None"]


class Dispatcher:
    """The delivery threads of one worker process."""

    def __init__(self, run: Runner, *, concurrency: int, share: int):
        self._run = run
        self.concurrency = concurrency
        self.share = max(1, min(share, concurrency))
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # held for every change of the state below
        # one lock, three kinds of waiters, so a change wakes only whom it concerns (a
        # notify_all on one condition woke every idle thread per step: ~15% of the CPU)
        self._has_work = threading.Condition(lock)  # idle delivery threads
        self._has_room = threading.Condition(lock)  # submitters under back-pressure
        self._went_idle = threading.Condition(lock)  # wait_idle / stop
        self._ready: deque[Work] = deque()
        self._active = 0
        self._known: set[str] = set()  # queued, running or parked execution ids
        self._inside: Counter[str] = Counter()  # destination -> calls in flight
        self._parked: dict[str, OrderedDict[str, None]] = {}
        self._caps: dict[str, int] = {}  # destination -> its share, as last asked
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- feeding -------------------------------------------------------------------------
    def submit(self, work: Work, *, block: bool = True) -> bool:
        """Queue an execution (False: it is in hand already, or the dispatcher stops)."""
        with self._cond:
            if self._stopping or work.execution_id in self._known:
                return False
            while block and len(self._ready) + self._active >= 2 * self.concurrency:
                self._has_room.wait()
                if self._stopping:
                    return False
            self._known.add(work.execution_id)
            self._push(work)
            return True

    def _push(self, work: Work) -> None:
        self._ready.append(work)
        self._start_threads()
        self._has_work.notify()

    def _start_threads(self) -> None:
        # grown on demand, so an idle worker holds no threads it never needed
        waiting_threads = len(self._threads) - self._active
        if len(self._ready) > waiting_threads and len(self._threads) < self.concurrency:
            t = threading.Thread(target=self._loop, name=f"hookwise-step-{len(self._threads)}",
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._has_work.wait()
                if self._stopping:
                    return
                work = self._ready.popleft()
                self._active += 1
            parked_on: str | None = None
            try:
                parked_on = self._run(work)
            except Exception:  # recorded by the runner where it could; the sweeper resumes
                log.exception("execution %s stopped", work.execution_id)
            with self._cond:
                self._active -= 1
                if parked_on is not None and not self._stopping:
                    self._park(parked_on, work.execution_id)
                else:
                    self._known.discard(work.execution_id)
                self._has_room.notify()
                if not (self._ready or self._active or self._parked):
                    self._went_idle.notify_all()

    # -- destination shares ----------------------------------------------------------------
    def enter(self, destination: str, limit: int | None = None) -> bool:
        """Take one of the destination's slots (False: its share — ``limit`` when the
        destination is configured with one — is in use)."""
        with self._cond:
            cap = self._caps[destination] = min(limit or self.share, self.concurrency)
            if self._inside[destination] >= cap:
                return False
            self._inside[destination] += 1
            return True

    def leave(self, destination: str) -> None:
        """Give the slot back; the oldest execution parked on it runs next."""
        with self._cond:
            self._inside[destination] -= 1
            if self._inside[destination] <= 0:
                del self._inside[destination]
            self._unpark(destination)

    def _park(self, destination: str, execution_id: str) -> None:
        if self._inside[destination] < self._caps.get(destination, self.share):
            self._push(Work(execution_id))  # a slot freed meanwhile: go again
            return
        self._parked.setdefault(destination, OrderedDict())[execution_id] = None

    def _unpark(self, destination: str) -> None:
        parked = self._parked.get(destination)
        if not parked:
            return
        execution_id, _ = parked.popitem(last=False)
        if not parked:
            del self._parked[destination]
        self._push(Work(execution_id))

    # -- state ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"queued": len(self._ready), "running": self._active,
                    "parked": {d: len(p) for d, p in self._parked.items()},
                    "in_flight": dict(self._inside), "threads": len(self._threads)}

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._ready or self._active or self._parked)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued, running or parked (True) or ``timeout`` passed."""
        with self._cond:
            return self._went_idle.wait_for(
                lambda: not (self._ready or self._active or self._parked), timeout)

    def stop(self, timeout: float) -> bool:
        """Finish the chains that are running (up to ``timeout``), start no more. What is
        queued or parked stays as the database has it, for the sweeper. True when every
        running chain ended in time."""
        with self._cond:
            self._stopping = True
            dropped = len(self._ready) + sum(len(p) for p in self._parked.values())
            self._ready.clear()
            self._parked.clear()
            for waiters in (self._has_work, self._has_room, self._went_idle):
                waiters.notify_all()
            done = self._went_idle.wait_for(lambda: not self._active, timeout)
        if dropped:
            log.warning("stopping: %d executions left for the sweeper", dropped)
        return done
