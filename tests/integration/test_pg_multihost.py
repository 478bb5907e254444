"""libpq multi-host URLs pass through (issue 16, item 3): with a first host that is down
and ``target_session_attrs=read-write``, Hookwise connects to the next one — the form a
PostgreSQL primary/standby pair behind no proxy is given in."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import text

from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.db import upgrade
from tests.conftest import pg_available

pytestmark = pytest.mark.skipif(not pg_available(), reason="no PostgreSQL")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_down_first_host_is_skipped(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.engine import make_url

    live = make_url(pg_url)
    base = f"postgresql+psycopg2://{live.username}@/{live.database}"
    query = "&".join(f"{k}={v}" for k, v in live.query.items())  # the test's own schema
    url = (f"{base}?host=127.0.0.1:{_closed_port()}&host={live.host}:{live.port or 5432}"
           f"&target_session_attrs=read-write&{query}")
    settings = Settings.from_env({"HOOKWISE_DATA_DIR": str(tmp_path),
                                  "HOOKWISE_DATABASE_URL": url,
                                  "HOOKWISE_REDIS_URL": "redis://127.0.0.1:6379/12"})
    upgrade(settings)
    rt = Runtime(settings)
    try:
        with rt.db.connect() as c:
            assert c.execute(text("SELECT inet_server_port()")).scalar() == (live.port or 5432)
            assert c.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        rt.close()
