"""The Flask application factory."""

from __future__ import annotations

import logging
from types import ModuleType

from flask import Flask

from engine.runtime import Runtime
from engine.settings import Settings


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    """Build the web app for ``settings`` (default: from the environment).

    The app holds one Runtime (database engine, Redis client, caches) for its process.
    """
    rt = runtime or Runtime(settings or Settings.from_env())
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=rt.settings.secret_key,
        MAX_CONTENT_LENGTH=rt.settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.extensions["hookwise"] = rt

    api, auth, errors, health, ingest, metrics, ui = import_modules()
    errors.register(app)
    app.register_blueprint(ingest.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    auth.init_app(app)
    api.init_app(app)
    ui.init_app(app)
    logging.getLogger("engine").setLevel(logging.INFO)
    app.wsgi_app = ingest.IngestEndpoint(app.wsgi_app, rt)  # type: ignore[method-assign]
    return app


def import_modules() -> tuple[ModuleType, ...]:
    """The web's modules (Flask, the API, the UI and what they import)."""
    from web import api, auth, errors, health, ingest, metrics, ui

    return api, auth, errors, health, ingest, metrics, ui
