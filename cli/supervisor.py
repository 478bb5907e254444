"""``hookwise serve``: everything in one command.

Runs the migrations, starts an embedded Redis when HOOKWISE_REDIS_URL is unset, then
supervises one web process (granian) and N worker processes, restarting a worker that
dies. With ``one_process`` the web is served from the first worker's process instead
(``hookwise worker --web``): the smallest memory, for small machines. Ctrl-C (SIGINT)
or SIGTERM stops the children gracefully (workers finish their current step), then
Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import click

from cli.common import hookwise_command
from engine.broker.embedded import EmbeddedRedis
from engine.outbound.instance import clear_record, url_for, write_record
from engine.settings import Settings

STOP_TIMEOUT_S = 15
RESTART_BACKOFF_S = 1.0


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own: the terminal's Ctrl-C reaches only us, and we stop the
    # children in order.
    return subprocess.Popen(hookwise_command(*args), env=env,
                            start_new_session=True)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _prepare(settings: Settings) -> str | None:
    """Migrate; the one-time setup token while there is no user yet."""
    from engine.store.accounts import Accounts, setup_token
    from engine.store.db import make_engine, upgrade

    upgrade(settings)
    eng = make_engine(settings.database_url)
    try:
        if Accounts(eng).has_users():
            return None
    finally:
        eng.dispose()
    return setup_token(settings.data_dir, create=True)


def _in_a_child(fn: Callable[[Settings], str | None], settings: Settings) -> str | None:
    """``fn(settings)`` in a forked child: what it imports (SQLAlchemy, Alembic, the
    models: ~50 MB) never loads into this long-lived supervisor."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(fn, (settings,))


def serve(host: str, port: int, workers: int, web_workers: int, *,
          one_process: bool = False) -> int:
    settings = Settings.from_env()
    token = _in_a_child(_prepare, settings)
    env = dict(os.environ)
    env["HOOKWISE_DATA_DIR"] = str(settings.data_dir)
    redis_srv: EmbeddedRedis | None = None
    if settings.redis_url is None:
        redis_srv = EmbeddedRedis(settings.data_dir)
        env["HOOKWISE_REDIS_URL"] = redis_srv.start()
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    if one_process:  # the web lives in the first worker; it is supervised as the web
        web = _spawn(["worker", "--web", f"{host}:{port}"], env)
        pool = [_spawn(["worker"], env) for _ in range(max(workers - 1, 0))]
        workers = max(workers, 1)
    else:
        web = _spawn(["web", "--host", host, "--port", str(port), "--workers",
                      str(web_workers), "--no-migrate"], env)
        pool = [_spawn(["worker"], env) for _ in range(workers)]
    # where we listen, for 'send', 'events', 'replay' and the workers (own inspector)
    record = write_record(settings.data_dir, host, port)
    where = "embedded Redis + " if redis_srv else ""
    db = "SQLite" if settings.database_url.startswith("sqlite") else "external database"
    shape = "web + 1 worker in one process" if one_process else f"{workers} worker(s)"
    if one_process and workers > 1:
        shape += f", {workers - 1} more worker(s)"
    click.echo(f"Hookwise on http://{host}:{port}  ({where}{db}, {shape}; "
               f"data in {settings.data_dir})")
    click.echo(f"Send webhooks to {url_for(host, port)}/hooks/<source>. Ctrl-C stops.")
    click.echo(f"Recorded in {record}: 'hookwise send', 'events' and 'replay' in another "
               f"shell find this instance when they use the same HOOKWISE_DATA_DIR.")
    if token:
        link = f"{url_for(host, port)}/setup?token={token}"
        click.echo(f"No user yet: create the first one at {link}")
        click.echo("(or run: hookwise user create you@example.com)")
    code = 0
    try:
        while not stopping:
            time.sleep(0.2)
            if web.poll() is not None:
                click.echo(f"web process exited with {web.returncode}; stopping", err=True)
                code = 1
                break
            for i, p in enumerate(pool):
                if p.poll() is not None and not stopping:
                    click.echo(f"worker exited with {p.returncode}; restarting", err=True)
                    time.sleep(RESTART_BACKOFF_S)
                    pool[i] = _spawn(["worker"], env)
    finally:
        click.echo("stopping…")
        _stop([web, *pool])
        clear_record(settings.data_dir, pid=os.getpid())
        if redis_srv is not None:
            redis_srv.stop()
        click.echo("stopped")
    return code
