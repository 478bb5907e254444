"""``reply`` steps: the HTTP answer to the webhook's caller (chatbots, slash commands).

The rendered reply is published for the waiting ingest request (``engine.broker.replies``);
the output's ``delivered`` says whether the caller got it.
"""

from __future__ import annotations

from typing import Any

from engine.actions.base import StepContext
from engine.broker import replies
from engine.errors import PermanentActionError, TransientActionError


def run(rendered: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    try:
        status = int(rendered.get("status") or 200)
    except (TypeError, ValueError):
        status = 0
    if not 100 <= status <= 599:
        raise PermanentActionError(
            f"reply status must be an HTTP status 100-599, got {rendered.get('status')!r}")
    reply = {
        "status": status,
        "headers": rendered.get("headers") or {},
        "json": rendered.get("json"),
        "text": rendered.get("text"),
        "body": rendered.get("body"),
        "content_type": rendered.get("content_type"),
    }
    delivered = False
    if ctx.redis is not None:
        try:
            delivered = replies.publish(ctx.redis, ctx.event_id, reply)
        except Exception as exc:  # redis errors: the reply may still be retried
            raise TransientActionError(f"could not publish the reply: {exc}") from exc
    # delivered=false: the caller had gone (deadline, or the source answers at once);
    # a later step can branch on $.steps.<id>.delivered and answer another way.
    return {**reply, "delivered": delivered}
