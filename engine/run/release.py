"""Releasing a waiting caller when no reply will come.

A source in ``respond: {mode: reply}`` holds the caller until a ``reply`` step answers.
When no chain of the event can reply any more (none of the matching rules has a reply
step, or the chain that had one ended before it), the caller gets the fallback at once
instead of waiting out its deadline. The policy (which source waits) is the catalog's;
the signal is the broker's (``engine.broker.replies.publish_no_reply``).
"""

from __future__ import annotations

import logging

from engine.broker.replies import publish_no_reply
from engine.runtime import Runtime

log = logging.getLogger(__name__)


def no_reply_coming(rt: Runtime, source_slug: str, event_id: str) -> None:
    """If the caller of a reply-mode source waits, tell it no reply will come."""
    source = rt.catalog.source(source_slug)
    if source is None or source.respond.mode != "reply":
        return
    try:
        publish_no_reply(rt.redis, event_id)
    except Exception as exc:  # the caller then waits out its deadline; nothing is lost
        log.warning("could not release the caller of %s: %s", event_id, exc)
