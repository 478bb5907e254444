"""The ``emit`` step: a new event on a source of this instance, so rules compose.

The event is stored like a webhook's (then queued) but needs no signature: it is marked
as emitted (``parent_id``: the event whose chain emitted it; the header
``x-hookwise-emitted-by``) and counts how deep the chain of emits is. Past
``MAX_EMIT_DEPTH`` the step fails with that reason, so two rules emitting to each other
cannot loop forever.

Its dedup key is the step's Idempotency-Key (``emit:<execution>:<step>[:<item>]``): a
step run again after a crash finds the event it stored the first time.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from engine.errors import DuplicateEvent, PermanentActionError, StorageError, TransientActionError
from engine.ids import new_id, utcnow
from engine.store.event_writer import insert_event

if TYPE_CHECKING:
    from engine.store.models import Event

log = logging.getLogger(__name__)

MAX_EMIT_DEPTH = 8
EMITTED_BY_HEADER = "x-hookwise-emitted-by"


def emit_event(rt: Any, parent: Event, rendered: dict[str, Any],
               idempotency_key: str) -> dict[str, Any]:
    """Store and queue the event (``rt``: the worker's Runtime: its catalog, database
    and queue); answers ``{event_id, source, depth}``."""
    source = str(rendered.get("source") or "")
    if rt.catalog.source(source) is None:
        raise PermanentActionError(f"emit: no source named {source!r} on this instance")
    depth = int(getattr(parent, "emit_depth", 0) or 0) + 1
    if depth > MAX_EMIT_DEPTH:
        raise PermanentActionError(
            f"emit chain deeper than {MAX_EMIT_DEPTH}: this event is already {depth - 1} "
            f"emits from the webhook that started the chain; not emitting to {source!r} "
            "(rules that emit to each other would loop)")
    if rendered.get("body") is not None:
        body: Any = str(rendered["body"])
        raw = body.encode()
        content_type = "text/plain; charset=utf-8"
    else:
        body = rendered.get("json")
        try:
            raw = json.dumps(body).encode()
        except (TypeError, ValueError) as exc:
            raise PermanentActionError(f"emit: json is not serialisable: {exc}") from None
        content_type = "application/json"
    headers = {str(k).lower(): str(v) for k, v in (rendered.get("headers") or {}).items()}
    headers[EMITTED_BY_HEADER] = parent.id
    headers["content-type"] = content_type
    row = {
        "id": new_id("evt"), "source": source, "received_at": utcnow(), "method": "POST",
        "content_type": content_type, "headers": headers, "query": {}, "body": body,
        "raw_body": raw, "dedup_key": f"emit:{idempotency_key}"[:255],
        "parent_id": parent.id, "emit_depth": depth,
    }
    try:
        insert_event(rt.db, row)
    except DuplicateEvent as dup:  # this step ran before and stored it: the same event
        return {"event_id": dup.event_id, "source": source, "depth": depth}
    except StorageError as exc:
        raise TransientActionError(f"emit: {exc}") from None
    try:
        from engine.broker.inbox import push_many

        push_many(rt.queue, [row["id"]])
    except Exception as exc:  # stored: the sweeper queues a pending event
        log.warning("emitted event %s stored but not queued (the sweeper will): %s",
                    row["id"], exc)
    return {"event_id": row["id"], "source": source, "depth": depth}
