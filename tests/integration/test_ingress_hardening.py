"""Ingress hardening (issue tracker items 9 and 10), through POST /hooks on a real app.

Item 9: a Twilio body is always authenticated — form bodies whatever the case of their
content type, JSON bodies only by bodySHA256 (signed with the twilio SDK).
Item 10: every body, however it arrives, passes the same JSON depth and number rules:
400 naming the rule, never a 5xx, nothing stored."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

import pytest
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from engine.store.models import Event
from engine.store.rule_files import apply_paths

TOKEN = "12345abcdef12345abcdef12345abcd"
SOURCES = """
sources:
  - {slug: tw, verify: {scheme: twilio, secret: TWILIO_TOKEN}}
  - slug: open
"""
URL = "http://localhost/hooks/tw"


@pytest.fixture
def sources(rt, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "s.yaml"
    f.write_text(SOURCES)
    apply_paths(rt.catalog, [f])
    rt.secrets.set("TWILIO_TOKEN", TOKEN)
    return rt


def stored(rt) -> list[Event]:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return list(s.exec(select(Event)))


# -- item 9: Twilio bodies are never left unsigned -------------------------------------------
PARAMS = {"From": "+15551234567", "Body": "hello bot", "MessageSid": "SM1"}


@pytest.mark.parametrize("ctype", ["Application/x-www-form-urlencoded",
                                   "APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8",
                                   "application/x-www-form-urlencoded;charset=UTF-8"])
def test_twilio_form_any_case_is_signed_with_its_params(sources, client, ctype) -> None:  # type: ignore[no-untyped-def]
    v = RequestValidator(TOKEN)
    body = urlencode(PARAMS).encode()
    good = client.post("/hooks/tw", data=body, content_type=ctype,
                       headers={"X-Twilio-Signature": v.compute_signature(URL, PARAMS)})
    assert good.status_code == 202, good.get_json()
    # a signature over the URL alone must not authenticate a form body
    url_only = client.post("/hooks/tw", data=body, content_type=ctype,
                           headers={"X-Twilio-Signature": v.compute_signature(URL, {})})
    assert url_only.status_code == 401, url_only.get_json()
    assert url_only.get_json()["error"] == "verification_failed"
    tampered = urlencode({**PARAMS, "Body": "forged"}).encode()
    resp = client.post("/hooks/tw", data=tampered, content_type=ctype,
                       headers={"X-Twilio-Signature": v.compute_signature(URL, PARAMS)})
    assert resp.status_code == 401
    [ev] = stored(sources)
    assert ev.body["Body"] == "hello bot"


@pytest.mark.parametrize("ctype", ["application/json", "Application/JSON; charset=utf-8",
                                   "text/plain"])
def test_twilio_json_body_without_body_sha256_is_refused(sources, client, ctype) -> None:  # type: ignore[no-untyped-def]
    sig = RequestValidator(TOKEN).compute_signature(URL, {})  # genuine for the URL
    resp = client.post("/hooks/tw", data=b'{"event": "forged"}', content_type=ctype,
                       headers={"X-Twilio-Signature": sig})
    assert resp.status_code == 401, resp.get_json()
    body = resp.get_json()
    assert body["error"] == "verification_failed"
    assert "bodySHA256" in body["message"]
    assert stored(sources) == []


def test_twilio_json_body_with_body_sha256_still_accepted(sources, client) -> None:  # type: ignore[no-untyped-def]
    body = b'{"event": "call.completed"}'
    v = RequestValidator(TOKEN)
    digest = v.compute_hash(body.decode())
    assert digest == hashlib.sha256(body).hexdigest()
    sig = v.compute_signature(f"{URL}?bodySHA256={digest}", {})
    resp = client.post(f"/hooks/tw?bodySHA256={digest}", data=body,
                       content_type="Application/JSON", headers={"X-Twilio-Signature": sig})
    assert resp.status_code == 202, resp.get_json()
    # an empty body signs nothing more than the URL: still fine without bodySHA256
    resp = client.post("/hooks/tw", data=b"", content_type="application/json",
                       headers={"X-Twilio-Signature": v.compute_signature(URL, {})})
    assert resp.status_code == 202, resp.get_json()
