"""Bounding the CPU time of user code (template rendering) in a worker.

Jinja cannot interrupt itself, so a template like two nested loops of 10,000 could keep
a worker busy for minutes. ``cpu_time_limit`` arms ITIMER_VIRTUAL (process CPU time,
delivered as SIGVTALRM — independent of the SIGALRM that RQ uses for job timeouts) and
raises the given error when it fires. Signals only reach the main thread, which is
where RQ's SimpleWorker runs jobs; elsewhere (a web thread rendering a dry run) the
block runs unbounded except for the template output caps.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

TEMPLATE_CPU_LIMIT_S = 2.0


@contextmanager
def cpu_time_limit(seconds: float, error: Callable[[], BaseException]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(_signum: int, _frame: Any) -> None:
        raise error()

    previous = signal.signal(signal.SIGVTALRM, _expired)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)
