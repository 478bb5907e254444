"""The HTML UI: server-rendered Jinja templates with htmx for the dynamic parts.

One module per page family (``dashboard``, ``sources``, ``rules``, ``events``,
``secrets``); each registers its views on ``bp``. Views are thin: they call the engine
(queries, catalog, replay, secrets) and render. The rule builder (``builder``) has a
blueprint of its own, registered here too.
"""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, render_template, request

bp = Blueprint("ui", __name__)

PAGE_MODULES = ("dashboard", "sources", "rules", "events", "secrets", "tokens", "rejections",
                "inspect", "transfer", "connections")


def is_htmx() -> bool:
    """A request made by htmx for a fragment (not a boosted page load)."""
    return request.headers.get("HX-Request") == "true" and \
        request.headers.get("HX-Boosted") != "true"


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        ts = value
    else:
        try:
            ts = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def fmt_time(value: Any) -> str:
    """``2025-03-01 14:05:09 UTC``."""
    ts = parse_time(value)
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "—"


def fmt_ago(value: Any, now: datetime | None = None) -> str:
    """``just now``, ``4 min ago``, ``3 h ago``, ``2 d ago``."""
    ts = parse_time(value)
    if ts is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - ts).total_seconds())
    span = abs(seconds)
    if span < 10:
        return "just now"
    if span < 60:
        text = f"{span} s"
    elif span < 3600:
        text = f"{span // 60} min"
    elif span < 86400:
        text = f"{span // 3600} h"
    else:
        text = f"{span // 86400} d"
    return f"{text} ago" if seconds > 0 else f"in {text}"


def fmt_duration(ms: Any) -> str:
    if ms is None:
        return "—"
    ms = float(ms)
    if ms < 1:
        return "<1 ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def pretty(value: Any) -> str:
    """Indented JSON for <pre> blocks (strings that hold JSON are shown as JSON)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def fmt_epoch(value: float | None) -> str:
    """Epoch seconds as ``HH:MM:SS UTC``."""
    if value is None:
        return ""
    return datetime.fromtimestamp(float(value), UTC).strftime("%H:%M:%S UTC")


def _not_found(exc: Exception) -> Any:
    return render_template("not_found.html", message=getattr(exc, "description", "")), 404


def init_app(app: Flask) -> None:
    for name in PAGE_MODULES:
        importlib.import_module(f"web.ui.{name}")
    from web.ui import builder

    builder.init_app(app)
    app.jinja_env.filters.update(when=fmt_time, ago=fmt_ago, duration=fmt_duration,
                                 pretty=pretty, epoch_time=fmt_epoch)
    if "ui" not in app.blueprints:
        app.register_blueprint(bp)


bp.register_error_handler(404, _not_found)
