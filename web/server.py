"""Serving the app.

``hookwise web``: granian's WSGI server (the default: bench/run.py measured it 45–150%
faster than gunicorn for ingest here), or gunicorn (gthread), configured from code.
``hookwise worker --web``: waitress in a thread of the worker's own process — web and
worker in one process, the smallest footprint (a server that forks or needs the main
thread cannot live beside RQ's worker loop)."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.runtime import Runtime

DEFAULT_WEB_WORKERS = 2
DEFAULT_THREADS = 8  # threads wait on reply steps without blocking other requests
KEEPALIVE_S = 5


class PortUnavailable(Exception):
    """``host:port`` cannot be listened on (in use, or not an address of this machine)."""


def check_port_free(host: str, port: int) -> None:
    """Raise PortUnavailable unless this process could listen on ``host:port`` alone.

    granian binds with SO_REUSEPORT, so a second server on a port another one already
    holds starts without error and the kernel splits the traffic between them. A plain
    bind (SO_REUSEADDR, which only overlooks connections in TIME_WAIT, but no
    SO_REUSEPORT) fails while anything listens there, which is the check wanted."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _name, addr in infos[:1]:  # the address a server binds
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(addr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortUnavailable(f"port {port} is in use on {host} (another "
                                          "process listens there); stop it or choose "
                                          "another --port") from None
                raise PortUnavailable(f"cannot listen on {host}:{port}: "
                                      f"{exc.strerror}") from None


def serve_web(host: str, port: int, *, workers: int = DEFAULT_WEB_WORKERS,
              threads: int = DEFAULT_THREADS, access_log: bool = False,
              server: str = "granian") -> None:
    """Serve until stopped: ``workers`` processes, each handling ``threads`` requests at
    once (a `respond: reply` source's wait holds one thread, not a process)."""
    if server == "granian":
        _serve_granian(host, port, workers, threads, access_log)
        return
    _serve_gunicorn({
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "keepalive": KEEPALIVE_S,
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": "-" if access_log else None,
        "loglevel": "warning",
    })


def _serve_gunicorn(options: dict[str, Any]) -> None:
    from gunicorn.app.base import BaseApplication

    class GunicornServer(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from web import create_app

            return create_app()  # one app (and Runtime) per gunicorn worker process

    GunicornServer().run()


def _serve_granian(host: str, port: int, workers: int, threads: int, access_log: bool) -> None:
    if workers > 1:  # with one worker there is nothing to share, only a main to bloat
        _preload()
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    Granian("web:create_app", factory=True, interface=Interfaces.WSGI, address=host,
            port=port, workers=workers, blocking_threads=threads, log_access=access_log,
            log_level=LogLevels.warning, respawn_failed_workers=True).serve()


def _preload() -> None:
    """Import the app's modules here, in the server's main process, and move them out of
    the garbage collector's reach, so the workers it forks share those pages instead of
    each loading its own copy (~40 MB less memory in all for 2 workers, measured with
    PSS). Only imports: each worker still builds its own app, database engine and Redis
    client after the fork."""
    import gc

    from web.app import import_modules

    import_modules()
    gc.collect()
    gc.freeze()


def serve_web_in_thread(host: str, port: int, rt: Runtime, *,
                        threads: int = DEFAULT_THREADS) -> Callable[[], None]:
    """Serve the app on ``host:port`` from threads of this process, sharing ``rt`` with
    the caller (a worker). Listening when it returns; the function it returns stops
    accepting, then gives requests in flight up to 10 s to finish."""
    from waitress import create_server

    from web import create_app

    server: Any = create_server(create_app(runtime=rt), host=host, port=port,
                                threads=threads, ident="hookwise",
                                clear_untrusted_proxy_headers=True)
    thread = threading.Thread(target=server.run, name="hookwise-web", daemon=True)
    thread.start()

    def stop() -> None:
        server.close()
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=10)
        thread.join(timeout=2)

    return stop
