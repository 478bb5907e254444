"""Fixture chain: redis_url / database_url → settings → rt (Runtime) → app → client.

Real services only: the machine's Redis when HOOKWISE_TEST_REDIS_URL is set (else an
embedded redis-server started once per session), SQLite files in tmp dirs, and the
machine's PostgreSQL (HOOKWISE_TEST_DATABASE_URL, default the local ``test`` database)
with a fresh schema per test.

Shared by tests/integration and tests/system; tests/unit/conftest.py refuses the service
fixtures, so unit tests stay pure.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from engine import runtime as runtime_mod
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.db import upgrade

PG_DEFAULT = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("HOOKWISE_TEST_REDIS_URL")
    if url:
        yield url
        return
    from engine.broker.embedded import EmbeddedRedis

    srv = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield srv.start()
    srv.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


def pg_base_url() -> str:
    return os.environ.get("HOOKWISE_TEST_DATABASE_URL", PG_DEFAULT)


def pg_available() -> bool:
    try:
        eng = create_engine(pg_base_url(), connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped after)."""
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {pg_base_url()} is not reachable")
        pytest.skip(f"PostgreSQL at {pg_base_url()} is not reachable")
    schema = f"hw_{secrets.token_hex(6)}"
    admin = create_engine(pg_base_url())
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_base_url() else "?"
    yield f"{pg_base_url()}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'hookwise.db'}"


@pytest.fixture
def env(tmp_path: Path, redis_url: str, database_url: str, redis_client: redis.Redis,
        smtp_server: object) -> dict:
    return {
        "HOOKWISE_SMTP_URL": smtp_server.url,  # type: ignore[attr-defined]
        "HOOKWISE_DATA_DIR": str(tmp_path / "data"),
        "HOOKWISE_DATABASE_URL": database_url,
        "HOOKWISE_REDIS_URL": redis_url,
        "HOOKWISE_SECRET_KEY": "test-secret-key",
        "HOOKWISE_EGRESS_ALLOW": "127.0.0.0/8",
        # a queue of its own: a stray worker from another run cannot take this test's jobs
        "HOOKWISE_QUEUE": f"hw-test-{secrets.token_hex(4)}",
    }


@pytest.fixture
def settings(env: dict) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    upgrade(settings)
    runtime = Runtime(settings)
    runtime_mod.install(runtime)
    yield runtime
    runtime_mod.install(None)
    runtime.close()


@pytest.fixture
def app(rt: Runtime):  # type: ignore[no-untyped-def]
    from web import create_app

    application = create_app(runtime=rt)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def work(rt: Runtime) -> Callable[..., None]:
    """Run a real RQ worker (in-process, burst) until ``until()`` holds or the queue and
    the due scheduled jobs are exhausted."""
    from engine.work.worker import make_worker

    def _work(until: Callable[[], bool] | None = None, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            make_worker(rt).work(burst=True, with_scheduler=True, logging_level="WARNING")
            if until is None or until():
                return
            if time.monotonic() > deadline:
                raise AssertionError("worker did not reach the expected state in time")
            time.sleep(0.1)

    return _work


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[object]:
    from tests.servers import SmtpSink

    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def smtp(smtp_server):  # type: ignore[no-untyped-def]
    """The session's SMTP sink, emptied for this test."""
    smtp_server.envelopes.clear()
    return smtp_server


@pytest.fixture
def sink() -> Iterator[object]:
    from tests.servers import HttpSink

    with HttpSink() as s:
        yield s


@pytest.fixture
def forwarded(rt, client, sink, tmp_path) -> Callable[[int], list[str]]:  # type: ignore[no-untyped-def]
    """Source ``s`` with one rule that forwards ``{"n": body.n}`` to ``sink``/out;
    ``forwarded(count)`` posts events n = 0..count-1 and answers their ids."""
    from engine.store.rule_files import apply_paths

    f = tmp_path / "forward.yaml"
    f.write_text(f"""
sources: [{{slug: s}}]
rules:
  - name: fwd
    source: s
    actions: [{{id: out, type: webhook, url: "{sink.url}/out", json: {{n: "{{{{ body.n }}}}"}}}}]
""")
    apply_paths(rt.catalog, [f])

    def post(count: int) -> list[str]:
        return [client.post("/hooks/s", json={"n": n}).get_json()["event_id"]
                for n in range(count)]

    return post


# -- browser tests: a live server on loopback and Debian's Chromium ---------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


@pytest.fixture
def live_server(app):  # type: ignore[no-untyped-def]
    """The app served by a threaded werkzeug server on a free loopback port.

    Workers are not running: call the ``work`` fixture to carry queued events out."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()


USER_EMAIL = "ada@example.test"
USER_PASSWORD = "correct horse battery"


@pytest.fixture
def user(rt):  # type: ignore[no-untyped-def]
    return rt.accounts.create_user(USER_EMAIL, USER_PASSWORD)


@pytest.fixture
def logged_in(page, live_server, user):  # type: ignore[no-untyped-def]
    """A page logged in through the real login form."""
    page.goto(f"{live_server}/login")
    page.get_by_label("Email").fill(USER_EMAIL)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server}/")
    return page


@pytest.fixture
def api_token(rt) -> str:  # type: ignore[no-untyped-def]
    return rt.accounts.create_token("tests")


@pytest.fixture
def api(client, api_token):  # type: ignore[no-untyped-def]
    """The Flask test client with a bearer token on every request."""

    class Api:
        headers = {"Authorization": f"Bearer {api_token}"}

        def __getattr__(self, method):  # type: ignore[no-untyped-def]
            call = getattr(client, method)
            return lambda url, **kw: call(url, headers={**self.headers, **kw.pop("headers", {})},
                                          **kw)

    return Api()
