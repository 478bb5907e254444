"""The HTTP contract of POST /hooks/<source>: 202 stored and queued, 200 duplicate,
400/401/404/405/413/415/429/503 with a JSON error body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from sqlmodel import Session, select

from engine.runtime import Runtime
from engine.store.db import make_engine
from engine.store.models import Event
from engine.store.rule_files import apply_paths
from tests.servers import free_port

SOURCES = """
sources:
  - slug: open
  - slug: tokened
    verify: {scheme: token, secret: HOOK_TOKEN, header: X-Hook-Token}
  - slug: querytok
    verify: {scheme: token, secret: HOOK_TOKEN}
  - slug: signed
    verify: {scheme: hmac, secret: HOOK_KEY, header: X-Sig, prefix: "sha256=", algorithm: sha256}
  - slug: signed64
    verify: {scheme: hmac, secret: HOOK_KEY, header: X-Sig, encoding: base64}
  - slug: basic
    verify: {scheme: basic, secret: HOOK_TOKEN, username: bot}
  - slug: byheader
    dedup: {header: X-Delivery}
"""


@pytest.fixture
def sources(rt, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "s.yaml"
    f.write_text(SOURCES)
    apply_paths(rt.catalog, [f])
    rt.secrets.set("HOOK_TOKEN", "s3cret-token")
    rt.secrets.set("HOOK_KEY", "k3y")
    return rt


def events(rt: Runtime) -> list[Event]:
    with Session(rt.db) as s:
        return list(s.exec(select(Event)))


def test_json_is_stored_and_queued(sources, client, rt, redis_client):  # type: ignore[no-untyped-def]
    resp = client.post("/hooks/open?x=1", json={"a": [1, 2]}, headers={"X-Thing": "y"})
    assert resp.status_code == 202
    [ev] = events(rt)
    assert resp.get_json() == {"event_id": ev.id}
    assert ev.body == {"a": [1, 2]} and ev.query == {"x": "1"} and ev.headers["x-thing"] == "y"
    assert ev.status == "pending"
    assert rt.queue.count == 1


def test_form_and_text_bodies(sources, client, rt):  # type: ignore[no-untyped-def]
    assert client.post("/hooks/open", data="a=1&b=x&b=y",
                       content_type="application/x-www-form-urlencoded").status_code == 202
    assert client.post("/hooks/open", data="<x>1</x>", content_type="application/xml"
                       ).status_code == 202
    bodies = [e.body for e in events(rt)]
    assert {"a": "1", "b": ["x", "y"]} in bodies and "<x>1</x>" in bodies


@pytest.mark.parametrize(
    ("path", "data", "ctype", "status", "code"),
    [
        ("/hooks/open", b"{not json", "application/json", 400, "bad_body"),
        ("/hooks/nope", b"{}", "application/json", 404, "unknown_source"),
        ("/hooks/open", b"\x89PNG", "image/png", 415, "unsupported_media_type"),
        ("/hooks/open", b"[" * 100 + b"]" * 100, "application/json", 400, "bad_body"),
    ],
)
def test_refusals_have_json_error_bodies_and_store_nothing(
    sources, client, rt, path, data, ctype, status, code  # type: ignore[no-untyped-def]
):
    resp = client.post(path, data=data, content_type=ctype)
    assert resp.status_code == status
    body = resp.get_json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]
    assert events(rt) == []


def test_oversize_is_413(rt, tmp_path, env):  # type: ignore[no-untyped-def]
    from engine.settings import Settings
    from web import create_app

    small = Runtime(Settings.from_env({**env, "HOOKWISE_MAX_BODY_BYTES": "100"}))
    f = tmp_path / "s.yaml"
    f.write_text("sources: [{slug: open}]")
    apply_paths(small.catalog, [f])
    c = create_app(runtime=small).test_client()
    resp = c.post("/hooks/open", data=json.dumps({"x": "y" * 200}),
                  content_type="application/json")
    assert resp.status_code == 413 and resp.get_json()["error"] == "too_large"
    assert events(rt) == []
    small.close()


@pytest.mark.parametrize(
    ("source", "headers", "query", "ok"),
    [
        ("tokened", {"X-Hook-Token": "s3cret-token"}, "", True),
        ("tokened", {"X-Hook-Token": "wrong"}, "", False),
        ("tokened", {}, "", False),
        ("querytok", {}, "?token=s3cret-token", True),
        ("querytok", {}, "?token=nope", False),
        ("basic", {"Authorization": "Basic " + base64.b64encode(b"bot:s3cret-token").decode()},
         "", True),
        ("basic", {"Authorization": "Basic " + base64.b64encode(b"eve:s3cret-token").decode()},
         "", False),
    ],
)
def test_token_and_basic_verification(sources, client, rt, source, headers, query, ok):  # type: ignore[no-untyped-def]
    resp = client.post(f"/hooks/{source}{query}", json={"a": 1}, headers=headers)
    if ok:
        assert resp.status_code == 202
        assert len(events(rt)) == 1
    else:
        assert resp.status_code == 401
        body = resp.get_json()
        assert body["error"] == "verification_failed"
        assert "s3cret-token" not in body["message"]
        assert events(rt) == []


def _sig(body: bytes, encoding: str) -> str:
    d = hmac.new(b"k3y", body, hashlib.sha256).digest()
    return d.hex() if encoding == "hex" else base64.b64encode(d).decode()


def test_hmac_verification_over_raw_body(sources, client, rt):  # type: ignore[no-untyped-def]
    body = b'{"b": 2,  "a": 1}'
    good = client.post("/hooks/signed", data=body, content_type="application/json",
                       headers={"X-Sig": "sha256=" + _sig(body, "hex")})
    assert good.status_code == 202
    tampered = client.post("/hooks/signed", data=body.replace(b"2", b"3"),
                           content_type="application/json",
                           headers={"X-Sig": "sha256=" + _sig(body, "hex")})
    assert tampered.status_code == 401
    assert "does not match" in tampered.get_json()["message"]
    noprefix = client.post("/hooks/signed", data=body, content_type="application/json",
                           headers={"X-Sig": _sig(body, "hex")})
    assert noprefix.status_code == 401
    b64 = client.post("/hooks/signed64", data=body, content_type="application/json",
                      headers={"X-Sig": _sig(body, "base64")})
    assert b64.status_code == 202
    assert len(events(rt)) == 2


def test_dedup_by_header(sources, client, rt):  # type: ignore[no-untyped-def]
    a = client.post("/hooks/byheader", json={"n": 1}, headers={"X-Delivery": "d-1"})
    b = client.post("/hooks/byheader", json={"n": 2}, headers={"X-Delivery": "d-1"})
    c = client.post("/hooks/byheader", json={"n": 3}, headers={"X-Delivery": "d-2"})
    assert (a.status_code, b.status_code, c.status_code) == (202, 200, 202)
    assert b.get_json()["duplicate"] is True
    assert len(events(rt)) == 2


def test_database_down_answers_503_and_never_2xx(sources, app, client, rt):  # type: ignore[no-untyped-def]
    assert client.post("/hooks/open", json={}).status_code == 202  # warm the source cache
    dead = make_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test")
    real = rt.db
    rt.__dict__["db"] = dead  # the database becomes unreachable
    try:
        resp = client.post("/hooks/open", json={"lost": False})
    finally:
        rt.__dict__["db"] = real
        dead.dispose()
    assert resp.status_code == 503 and resp.get_json()["error"] == "unavailable"
    assert [e.body for e in events(rt)] == [{}]


def test_redis_down_still_stores_and_answers_202(sources, env, tmp_path):  # type: ignore[no-untyped-def]
    from engine.settings import Settings
    from web import create_app

    broken = Runtime(Settings.from_env(
        {**env, "HOOKWISE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}))
    c = create_app(runtime=broken).test_client()
    resp = c.post("/hooks/open", json={"kept": True})
    assert resp.status_code == 202
    [ev] = events(broken)
    assert ev.status == "pending" and ev.body == {"kept": True}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
    broken.close()


def test_health_and_ready(client, rt):  # type: ignore[no-untyped-def]
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_rate_limit_answers_429_with_retry_after(rt, client, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "s.yaml"
    f.write_text("sources: [{slug: limited, rate_limit: {requests: 3, per_s: 60}}]")
    apply_paths(rt.catalog, [f])
    answers = [client.post("/hooks/limited", json={"n": i}) for i in range(5)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    refused = answers[3]
    assert refused.get_json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert len(events(rt)) == 3  # refused requests are not stored


def test_sender_credentials_are_not_stored(sources, client, rt):  # type: ignore[no-untyped-def]
    client.post("/hooks/tokened", json={}, headers={"X-Hook-Token": "s3cret-token"})
    client.post("/hooks/querytok?token=s3cret-token&keep=1", json={})
    basic = "Basic " + base64.b64encode(b"bot:s3cret-token").decode()
    client.post("/hooks/basic", json={}, headers={"Authorization": basic})
    stored = events(rt)
    assert len(stored) == 3
    for ev in stored:
        assert "s3cret-token" not in json.dumps(ev.headers) + json.dumps(ev.query)
    by_source = {e.source: e for e in stored}
    assert by_source["tokened"].headers["x-hook-token"] == "[redacted]"
    assert by_source["querytok"].query == {"token": "[redacted]", "keep": "1"}
    assert by_source["basic"].headers["authorization"] == "[redacted]"


def test_credential_headers_are_redacted_like_a_steps_request(sources, client, rt):  # type: ignore[no-untyped-def]
    """One list of credential headers serves ingest and step records: a cookie or an
    API key a sender happens to send is not stored either."""
    from engine.store.secrets import CREDENTIAL_HEADERS

    sent = {"X-Api-Key": "k-123456", "Api-Key": "k-654321", "X-Auth-Token": "t-123456",
            "X-Other": "kept"}
    client.set_cookie("session", "abc123")  # the test client sends its jar as Cookie
    client.post("/hooks/open", json={}, headers=sent)
    (ev,) = events(rt)
    redacted = {k for k, v in ev.headers.items() if v == "[redacted]"}
    assert redacted == {"cookie", "x-api-key", "api-key", "x-auth-token"}
    assert redacted <= CREDENTIAL_HEADERS
    assert ev.headers["x-other"] == "kept"


# -- the WSGI endpoint in front of Flask (web/ingest.py) -------------------------------


def test_other_methods_on_a_hook_url_are_405_with_allow(sources, client, rt):  # type: ignore[no-untyped-def]
    resp = client.get("/hooks/open")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST, PUT"
    assert resp.get_json()["error"] == "method_not_allowed"
    assert client.put("/hooks/open", json={"a": 1}).status_code == 202
    assert len(events(rt)) == 1


def test_paths_below_a_source_are_not_hooks(sources, client, rt):  # type: ignore[no-untyped-def]
    assert client.post("/hooks/open/extra", json={"a": 1}).status_code != 202
    assert client.post("/hooks/", json={"a": 1}).status_code != 202
    assert events(rt) == []


def test_utf8_in_path_and_query_and_repeated_query_keys(sources, client, rt):  # type: ignore[no-untyped-def]
    resp = client.post("/hooks/caf%C3%A9", json={})
    assert resp.status_code == 404 and "café" in resp.get_json()["message"]
    resp = client.post("/hooks/open?name=%C3%A9t%C3%A9&tag=a&tag=b&empty=", json={"a": 1})
    assert resp.status_code == 202
    [ev] = events(rt)
    assert ev.query == {"name": "été", "tag": ["a", "b"], "empty": ""}
    assert ev.headers["content-type"] == "application/json"


def _call(app, environ_extra: dict, body: bytes):  # type: ignore[no-untyped-def]
    """Call the app as a WSGI server would, with a body of unknown length (chunked)."""
    import io

    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path="/hooks/open", method="POST").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(body),
                    "wsgi.input_terminated": True, **environ_extra})
    seen: dict = {}

    def start_response(status, headers):  # type: ignore[no-untyped-def]
        seen.update(status=status, headers=dict(headers))

    out = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], json.loads(out)


def test_chunked_bodies_are_read_and_oversize_ones_refused(sources, rt, env, tmp_path):  # type: ignore[no-untyped-def]
    from engine.settings import Settings
    from web import create_app

    small = Runtime(Settings.from_env({**env, "HOOKWISE_MAX_BODY_BYTES": "100"}))
    app = create_app(runtime=small)
    status, headers, body = _call(app, {}, json.dumps({"x": "y" * 50}).encode())
    assert status == "202 Accepted" and headers["Content-Type"] == "application/json"
    assert body["event_id"].startswith("evt")
    assert [e.body for e in events(rt)] == [{"x": "y" * 50}]
    status, _, body = _call(app, {}, json.dumps({"x": "y" * 200}).encode())
    assert status.startswith("413") and body["error"] == "too_large"
    assert len(events(rt)) == 1  # the first one only
    small.close()


def test_a_crash_in_ingest_is_a_json_500_and_logged(sources, client, monkeypatch, caplog):  # type: ignore[no-untyped-def]
    import web.ingest

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr(web.ingest, "ingest", broken)
    resp = client.post("/hooks/open", json={"a": 1})
    assert resp.status_code == 500 and resp.get_json()["error"] == "internal_error"
    assert "a bug" in caplog.text
