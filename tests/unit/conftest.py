"""Unit tests are pure: the service fixtures of tests/conftest.py (Redis, databases, SMTP
and HTTP servers, browsers, and everything built on them: settings, rt, app, client…) are
refused here, so a test that needs one fails at once and belongs in tests/integration."""

from __future__ import annotations

import pytest

SERVICES = ("redis_url", "pg_url", "database_url", "smtp_server", "sink", "live_server",
            "browser")


def _refused(name: str):  # type: ignore[no-untyped-def]
    @pytest.fixture(name=name)
    def refused() -> None:
        pytest.fail(f"tests/unit uses no services: a test that needs `{name}` belongs in "
                    "tests/integration")

    return refused


for _name in SERVICES:
    globals()[f"_no_{_name}"] = _refused(_name)
