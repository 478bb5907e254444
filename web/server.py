"""Serving the app (``hookwise web``): granian's WSGI server (the default: bench/run.py
measured it 45–150% faster than gunicorn for ingest here), or gunicorn (gthread),
configured from code."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

DEFAULT_WEB_WORKERS = 2
DEFAULT_THREADS = 8  # threads wait on reply steps without blocking other requests
KEEPALIVE_S = 5
SERVERS = ("gunicorn", "granian")


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
              threads: int = DEFAULT_THREADS, access_log: bool = False,
              server: str = "granian") -> None:
    """Serve until stopped: ``workers`` processes, each handling ``threads`` requests at
    once (a `respond: reply` source's wait holds one thread, not a process)."""
    if server == "granian":
        _serve_granian(host, port, workers, threads, access_log)
        return
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


def _serve_granian(host: str, port: int, workers: int, threads: int, access_log: bool) -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    Granian("web:create_app", factory=True, interface=Interfaces.WSGI, address=host,
            port=port, workers=workers, blocking_threads=threads, log_access=access_log,
            log_level=LogLevels.warning, respawn_failed_workers=True).serve()
