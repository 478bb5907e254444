"""Commands that run Hookwise: ``serve``, ``web``, ``worker`` and ``db upgrade``."""

from __future__ import annotations

import click

from cli.common import (
    InputError,
    migrate_in_a_child,
    migrated_runtime,
    runtime,
)


def _port_free(host: str, port: int) -> None:
    """Exit 2 with the reason when ``host:port`` cannot be listened on alone."""
    from web.server import PortUnavailable, check_port_free

    try:
        check_port_free(host, port)
    except PortUnavailable as exc:
        raise InputError(str(exc)) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="RQ worker processes")
@click.option("--web-workers", default=1, show_default=True, type=int,
              help="web server processes (one serves ~1,300 webhooks/s here; see README)")
@click.option("--one-process", is_flag=True,
              help="serve the web from the first worker's process: the smallest memory")
def serve(host: str, port: int, workers: int, web_workers: int, one_process: bool) -> None:
    """Web + workers (+ embedded Redis) in one command."""
    from cli.supervisor import serve as run

    _port_free(host, port)
    raise SystemExit(run(host, port, workers, web_workers, one_process=one_process))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="server processes")
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--no-migrate", is_flag=True, help="skip 'db upgrade' at start")
@click.option("--access-log", is_flag=True)
@click.option("--server", type=click.Choice(["granian", "gunicorn"]), default="granian",
              show_default=True, help="the WSGI server (bench/run.py measures both)")
def web(host: str, port: int, workers: int, threads: int, no_migrate: bool,
        access_log: bool, server: str) -> None:
    """Web/ingest only."""
    from web.server import serve_web

    _port_free(host, port)
    if not no_migrate:
        migrate_in_a_child()
    serve_web(host, port, workers=workers, threads=threads, access_log=access_log,
              server=server)


@click.command()
@click.option("--burst", is_flag=True, help="exit when the queue is empty")
@click.option("--web", "web_at", metavar="HOST:PORT",
              help="also serve the web (ingest, UI, API) from this process: one process, "
                   "the smallest memory (threads; less throughput than 'hookwise web')")
@click.option("--threads", default=8, show_default=True, type=int, help="with --web")
def worker(burst: bool, web_at: str | None, threads: int) -> None:
    """One RQ worker."""
    from engine.work.worker import run_worker

    host, _, port = (web_at or "").rpartition(":")
    if web_at and (not host or not port.isdigit()):
        raise InputError(f"--web: expected HOST:PORT, got {web_at!r}")
    if web_at:
        _port_free(host, int(port))
    rt = runtime()
    stop_web = None
    if web_at:
        from web.server import serve_web_in_thread

        stop_web = serve_web_in_thread(host, int(port), rt, threads=threads)
        click.echo(f"web: serving on http://{host}:{port} from this worker's process",
                   err=True)
    try:
        run_worker(rt, burst=burst, with_scheduler=not burst)
    finally:
        if stop_web is not None:
            stop_web()


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Run the migrations up to the newest schema."""
    migrated_runtime()
    click.echo("database is up to date")
