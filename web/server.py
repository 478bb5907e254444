"""Serving the app with gunicorn, configured from code (``hookwise web``)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

DEFAULT_WEB_WORKERS = 2
DEFAULT_THREADS = 8  # threads wait on reply steps without blocking other requests
KEEPALIVE_S = 5


class GunicornServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from web import create_app

        return create_app()  # one app (and Runtime) per gunicorn worker process


def serve_web(host: str, port: int, *, workers: int = DEFAULT_WEB_WORKERS,
              threads: int = DEFAULT_THREADS, access_log: bool = False) -> None:
    GunicornServer({
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "keepalive": KEEPALIVE_S,
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": "-" if access_log else None,
        "loglevel": "warning",
    }).run()
