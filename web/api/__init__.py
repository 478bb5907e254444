"""The JSON API under /api/v1 (bearer token or login session, enforced by ``web.auth``).

One module per concept registers its operations on the blueprint in ``registry``:
``sources``, ``connections``, ``rules``, ``drafts`` (dry run and backtest), ``secrets``, ``events``,
``executions``, ``destinations``, ``rejections``, ``stats``, ``tokens`` and ``openapi`` (the
document built from the same registry).
Request and response bodies are pydantic models in ``models``; errors in ``errors``.
"""

from __future__ import annotations

from flask import Flask

from web.api import (  # noqa: F401 - importing registers the operations
    connections,
    destinations,
    drafts,
    events,
    executions,
    openapi,
    rejections,
    rules,
    secrets,
    sources,
    stats,
    tokens,
)
from web.api.registry import bp


def init_app(app: Flask) -> None:
    """Register the API blueprint on ``app``."""
    app.register_blueprint(bp)
