"""Deprecated paths of the ``process_event`` and ``run_execution`` RQ jobs (Hookwise 0.1);
remove in 0.3.

Jobs queued before the upgrade name ``engine.tasks.*``; RQ imports them from here. See
``engine.broker.jobs``.
"""

from engine.work.jobs import process_event, run_execution

__all__ = ["process_event", "run_execution"]
