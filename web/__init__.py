"""People and HTTP: the Flask app (ingest, health, the JSON API and the UI).

``create_app`` is imported on first call, so the command line (and a worker process,
which never serves HTTP) does not load Flask and the UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(*args: Any, **kwargs: Any) -> Flask:
    from web.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
