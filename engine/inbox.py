"""Deprecated path of the ``drain_inbox`` RQ job (Hookwise 0.1); remove in 0.3.

Jobs queued before the upgrade name ``engine.inbox.drain_inbox``; RQ imports it from here.
See ``engine.broker.jobs``.
"""

from engine.work.jobs import drain_inbox

__all__ = ["drain_inbox"]
