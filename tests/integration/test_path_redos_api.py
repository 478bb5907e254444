"""A catastrophic ``=~`` pattern in ``GET /api/v1/events?path=`` runs on RE2 (the web
thread answers at once), and a pattern RE2 cannot compile is a 422 naming the path, both
there and when a rule is saved."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EVENTS = "/api/v1/events"
EVIL = '$.body.items[?(@.k =~ "^(a+)+$")]'
BACKREF = r'$.body.items[?(@.k =~ "(a)\\1")]'


@contextmanager
def under_one_second() -> Iterator[None]:
    def alarm(*_: Any) -> None:
        raise TimeoutError("request ran for over 1 s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 1.0


def _post_events(api, client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert api.post("/api/v1/sources", json={"slug": "shop"}).status_code == 201
    ids = {}
    for key, items in (("hostile", [{"k": "a" * 34 + "!"}]), ("plain", [{"k": "aaaa"}]),
                       ("other", [{"k": "order.paid"}])):
        resp = client.post("/hooks/shop", json={"items": items})
        assert resp.status_code == 202
        ids[key] = resp.get_json()["event_id"]
    return ids


def test_catastrophic_path_filter_answers_fast(api, client) -> None:  # type: ignore[no-untyped-def]
    ids = _post_events(api, client)
    with under_one_second():
        resp = api.get(EVENTS, query_string={"path": EVIL})
    assert resp.status_code == 200, resp.get_json()
    assert [e["id"] for e in resp.get_json()["items"]] == [ids["plain"]]

    ordinary = api.get(EVENTS, query_string={"path": '$.body.items[?(@.k =~ "paid$")]'})
    assert [e["id"] for e in ordinary.get_json()["items"]] == [ids["other"]]


def test_backreference_in_path_query_is_a_422(api, client) -> None:  # type: ignore[no-untyped-def]
    _post_events(api, client)
    resp = api.get(EVENTS, query_string={"path": BACKREF})
    assert resp.status_code == 422
    text = str(resp.get_json())
    assert "path" in text and "back-references" in text and "=~" in text


def test_backreference_in_rule_path_is_refused_at_save(api) -> None:  # type: ignore[no-untyped-def]
    assert api.post("/api/v1/sources", json={"slug": "shop"}).status_code == 201
    rule = {"name": "redos", "source": "shop",
            "when": {"path": BACKREF, "op": "exists"},
            "actions": [{"id": "n", "type": "webhook", "url": "https://example.com/x",
                         "json": {}}]}
    resp = api.post("/api/v1/rules", json=rule)
    assert resp.status_code == 422
    text = str(resp.get_json())
    assert "back-references" in text and "=~" in text
