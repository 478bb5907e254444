"""Bounding the CPU time of user code (template rendering), in any thread.

Jinja cannot interrupt itself, so a template like two nested loops of 10,000 could keep
a thread busy for minutes. ``cpu_time_limit(seconds, error)`` raises ``error()`` inside
the block once the *calling thread* has used ``seconds`` of CPU time in it:

- in the main thread it arms ITIMER_VIRTUAL (delivered as SIGVTALRM, independent of the
  SIGALRM RQ uses for job timeouts);
- in any other thread (a worker's delivery threads, a web thread rendering a dry run) a
  watchdog thread reads the thread's own CPU clock (``pthread_getcpuclockid``) every
  ``WATCH_INTERVAL_S`` and, past the limit, raises ``CpuTimeExceeded`` in it
  asynchronously (``PyThreadState_SetAsyncExc``): it lands at the thread's next bytecode,
  which Jinja's compiled templates are made of. The block's exit clears an exception
  that was raised too late to land inside it, so it can never surface elsewhere.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

TEMPLATE_CPU_LIMIT_S = 2.0
WATCH_INTERVAL_S = 0.05


class CpuTimeExceeded(BaseException):
    """Raised into a thread whose block ran past its CPU budget (a BaseException, so a
    template's own ``except Exception`` cannot swallow it)."""


@contextmanager
def cpu_time_limit(seconds: float, error: Callable[[], BaseException]) -> Iterator[None]:
    if threading.current_thread() is threading.main_thread():
        with _itimer(seconds, error):
            yield
        return
    try:
        with _WATCHDOG.watching(seconds):
            yield
    except CpuTimeExceeded:
        raise error() from None


@contextmanager
def _itimer(seconds: float, error: Callable[[], BaseException]) -> Iterator[None]:
    def _expired(_signum: int, _frame: Any) -> None:
        raise error()

    previous = signal.signal(signal.SIGVTALRM, _expired)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class _Watchdog:
    """One daemon thread for the process, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[int, float]] = {}  # thread id -> (clock, deadline)
        self._thread: threading.Thread | None = None

    @contextmanager
    def watching(self, seconds: float) -> Iterator[None]:
        tid = threading.get_ident()
        clock = time.pthread_getcpuclockid(tid)
        with self._lock:
            self._watched[tid] = (clock, time.clock_gettime(clock) + seconds)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="hookwise-cpu-watch",
                                                daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._watched.pop(tid, None)
                _set_async_exc(tid, ctypes.py_object())  # NULL: drop one not yet delivered

    def _loop(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            with self._lock:
                for tid, (clock, deadline) in list(self._watched.items()):
                    try:
                        over = time.clock_gettime(clock) >= deadline
                    except OSError:  # the thread is gone
                        over = False
                        del self._watched[tid]
                    if over:
                        del self._watched[tid]
                        _set_async_exc(tid, ctypes.py_object(CpuTimeExceeded))


_WATCHDOG = _Watchdog()
