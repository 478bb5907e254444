"""``/api/v1/stats``: the dashboard's numbers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify
from redis.exceptions import RedisError

from engine.broker.inbox import queue_depth
from engine.errors import ConfigError
from engine.runtime import Runtime
from engine.store.queries import counts, timeseries
from web.api.registry import operation
from web.api.run_models import StatsOut
from web.context import runtime

log = logging.getLogger(__name__)


def queue_stats(rt: Runtime) -> dict[str, int] | None:
    try:
        return queue_depth(rt.queue)
    except (RedisError, ConfigError, OSError) as exc:
        log.warning("queue stats unavailable: %s", exc)
        return None


@operation("GET", "/stats", tag="stats", summary="Dashboard statistics",
           description="Events received and executions failed over the last 24 hours, "
                       "counts by status, and the queue's length (null when Redis is down).",
           responses={200: StatsOut})
def stats() -> Response:
    rt = runtime()
    out: dict[str, Any] = {"timeseries": timeseries(rt.db), "counts": counts(rt.db),
                           "queue": queue_stats(rt)}
    return jsonify(out)
