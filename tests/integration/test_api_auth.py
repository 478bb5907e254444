"""Every /api/v1 route needs a bearer token or a login session (plus CSRF on writes);
errors anywhere under /api/ are JSON."""

from __future__ import annotations

import re

import pytest
from itsdangerous import URLSafeTimedSerializer

from web.api.registry import PREFIX


def api_routes(app):  # type: ignore[no-untyped-def]
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, re.sub(r"<(?:\w+:)?\w+>", "x", rule.rule)


def test_every_route_refuses_anonymous_requests(app, client):  # type: ignore[no-untyped-def]
    routes = list(api_routes(app))
    assert len(routes) >= 20
    for method, url in routes:
        resp = client.open(url, method=method, json={})
        assert resp.status_code == 401, (method, url)
        assert resp.get_json()["error"] == "unauthorized"
        assert resp.get_json()["message"]


def test_a_wrong_token_is_refused(client, api_token):  # type: ignore[no-untyped-def]
    resp = client.get(f"{PREFIX}/rules", headers={"Authorization": "Bearer hw_nope"})
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "unauthorized"


def login(client, user):  # type: ignore[no-untyped-def]
    with client.session_transaction() as s:
        s["user_id"] = user.id


def test_a_session_reads_but_writes_need_the_csrf_token(app, client, user):  # type: ignore[no-untyped-def]
    login(client, user)
    assert client.get(f"{PREFIX}/sources").status_code == 200

    resp = client.post(f"{PREFIX}/sources", json={"slug": "shop"})
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "csrf_failed"
    assert client.get(f"{PREFIX}/sources").get_json()["total"] == 0

    raw = "f" * 40  # what flask-wtf keeps in the session; the page carries it signed
    with client.session_transaction() as s:
        s["csrf_token"] = raw
    signed = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)
    resp = client.post(f"{PREFIX}/sources", json={"slug": "shop"},
                       headers={"X-CSRFToken": signed})
    assert resp.status_code == 201, resp.get_json()


def test_bearer_requests_need_no_csrf_token(api):  # type: ignore[no-untyped-def]
    assert api.post(f"{PREFIX}/sources", json={"slug": "shop"}).status_code == 201


@pytest.mark.parametrize(("method", "url", "status", "code"), [
    ("GET", f"{PREFIX}/nothing-here", 404, "not_found"),
    ("GET", "/api/v2/rules", 404, "not_found"),
    ("DELETE", f"{PREFIX}/sources", 405, "method_not_allowed"),
    ("POST", f"{PREFIX}/events/evt_1", 405, "method_not_allowed"),
])
def test_routing_errors_are_json(api, method, url, status, code):  # type: ignore[no-untyped-def]
    resp = getattr(api, method.lower())(url)
    assert resp.status_code == status
    assert resp.get_json()["error"] == code
    assert resp.get_json()["message"]


@pytest.mark.parametrize("data", ["{", "[1,", "", "nul"])
def test_malformed_json_is_a_bad_request(api, data):  # type: ignore[no-untyped-def]
    resp = api.post(f"{PREFIX}/rules", data=data, content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "bad_request"
    assert resp.get_json()["message"]
