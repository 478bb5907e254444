"""``/healthz`` (process up) and ``/readyz`` (database and Redis reachable)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from engine.store.db import ping
from web.context import runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    rt = runtime()
    checks: dict[str, str] = {}
    try:
        ping(rt.db)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        rt.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    # Redis down is a degradation (events are still stored and swept later);
    # the database down means webhooks are refused.
    status = 200 if checks["database"] == "ok" else 503
    return jsonify({"status": "ok" if ok else "degraded", "checks": checks}), status
