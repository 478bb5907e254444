"""Ingress hardening (issue tracker items 9 and 10), through POST /hooks on a real app.

Item 9: a Twilio body is always authenticated — form bodies whatever the case of their
content type, JSON bodies only by bodySHA256 (signed with the twilio SDK).
Item 10: every body, however it arrives, passes the same JSON depth and number rules:
400 naming the rule, never a 5xx, nothing stored."""

from __future__ import annotations

import hashlib
from urllib.parse import quote, urlencode

import pytest
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from engine.ingress.parsing import MAX_JSON_DEPTH
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


# -- item 10: one depth rule and one number rule for every body ------------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


DEEP = [(nested(5000), "5000"), (nested(900), "900"), (nested(MAX_JSON_DEPTH + 1), "65")]
NON_FINITE = ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1e999}',
              '[-1e999]', '{"a": [1, {"b": NaN}]}']
JSON_TYPES = ["application/json", "Application/JSON; charset=utf-8",
              "application/vnd.thing+json", None]


def _post(client, text: str, ctype: str | None, form: bool):  # type: ignore[no-untyped-def]
    if form:
        return client.post("/hooks/open", data=f"payload={quote(text)}",
                           content_type=ctype or "application/x-www-form-urlencoded")
    if ctype is None:  # no declared type: JSON if it parses
        return client.post("/hooks/open", data=text.encode())
    return client.post("/hooks/open", data=text.encode(), content_type=ctype)


CASES = ([(t, c, False) for t in [d for d, _ in DEEP] + NON_FINITE for c in JSON_TYPES]
         + [(t, c, True) for t in [d for d, _ in DEEP] + NON_FINITE
            for c in ["application/x-www-form-urlencoded",
                      "Application/X-WWW-Form-Urlencoded; charset=utf-8"]])


def _id(case: tuple) -> str:
    text, ctype, form = case
    return f"{'form' if form else 'raw'}-{ctype}-{text[:12]}-{len(text)}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_too_deep_or_non_finite_is_400_and_not_stored(sources, client, case) -> None:  # type: ignore[no-untyped-def]
    text, ctype, form = case
    resp = _post(client, text, ctype, form)
    assert resp.status_code == 400, (resp.status_code, resp.get_data()[:300])
    body = resp.get_json()
    assert body["error"] == "bad_body"
    if text.startswith("[["):
        assert f"deeper than {MAX_JSON_DEPTH} levels" in body["message"], body
    else:
        assert "NaN" in body["message"] and "infinit" in body["message"], body
    assert stored(sources) == []


def test_within_the_limits_is_still_accepted(sources, client) -> None:  # type: ignore[no-untyped-def]
    ok = client.post("/hooks/open", data=nested(MAX_JSON_DEPTH), content_type="application/json")
    assert ok.status_code == 202, ok.get_json()
    # a form body is one level: its payload may be one level less deep than the limit
    ok = client.post("/hooks/open", data=f"payload={quote(nested(MAX_JSON_DEPTH - 1))}",
                     content_type="application/x-www-form-urlencoded")
    assert ok.status_code == 202, ok.get_json()
    big = client.post("/hooks/open", data='{"a": 1e308, "b": -1.5e-300, "c": 12345678901234567890}',
                      content_type="application/json")
    assert big.status_code == 202, big.get_json()
    # a payload that is not JSON at all stays a string, as before
    ok = client.post("/hooks/open", data="payload=%7Bnot+json",
                     content_type="application/x-www-form-urlencoded")
    assert ok.status_code == 202, ok.get_json()
    evs = sorted(stored(sources), key=lambda e: e.received_at)
    assert len(evs) == 4
    assert evs[2].body == {"a": 1e308, "b": -1.5e-300, "c": 12345678901234567890}
    assert evs[3].body == {"payload": "{not json"}
