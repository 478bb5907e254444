"""Provider signatures, checked against the providers' own SDKs (stripe, slack_sdk,
standardwebhooks, twilio), through POST /hooks. (The known-answer vectors in their docs:
tests/unit/test_signature_vectors.py.)"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from sqlmodel import Session, select
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator

from engine.store.models import Event
from engine.store.rule_files import apply_paths

SECRETS = {
    "STRIPE_WHSEC": "whsec_test_0123456789abcdef",
    "SLACK_SIGNING": "8f742231b10e8888abcd99yyyzzz85a5",
    "STD_SECRET": "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byte").decode(),
    "GH_SECRET": "It's a Secret to Everybody",
    "SHOPIFY_SECRET": "shpss_test_secret",
    "TWILIO_TOKEN": "12345abcdef12345abcdef12345abcd",
    "TG_SECRET": "tg-secret_token-123",
}

SOURCES = """
sources:
  - {slug: stripe, verify: {scheme: stripe, secret: STRIPE_WHSEC}}
  - {slug: slack, verify: {scheme: slack, secret: SLACK_SIGNING}}
  - {slug: std, verify: {scheme: standard, secret: STD_SECRET}}
  - {slug: gh, verify: {scheme: github, secret: GH_SECRET}}
  - {slug: shop, verify: {scheme: shopify, secret: SHOPIFY_SECRET}}
  - {slug: tw, verify: {scheme: twilio, secret: TWILIO_TOKEN}}
  - {slug: tg, verify: {scheme: telegram, secret: TG_SECRET}}
"""


@pytest.fixture
def providers(rt, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "s.yaml"
    f.write_text(SOURCES)
    apply_paths(rt.catalog, [f])
    for k, v in SECRETS.items():
        rt.secrets.set(k, v)
    return rt


def stored(rt) -> int:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return len(s.exec(select(Event)).all())


# -- request builders: (body bytes, headers, content type, path) per provider ----------------
def stripe_req(body: bytes, *, secret: str = SECRETS["STRIPE_WHSEC"], ts: int | None = None):  # type: ignore[no-untyped-def]
    ts = int(time.time()) if ts is None else ts
    sig = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, ts)
    return {"Stripe-Signature": sig}


def slack_req(body: bytes, *, secret: str = SECRETS["SLACK_SIGNING"], ts: int | None = None):  # type: ignore[no-untyped-def]
    ts = int(time.time()) if ts is None else ts
    sig = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig}


def std_req(body: bytes, *, secret: str = SECRETS["STD_SECRET"], ts: int | None = None,
            msg_id: str = "msg_2b3c"):  # type: ignore[no-untyped-def]
    ts = int(time.time()) if ts is None else ts
    sig = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def gh_req(body: bytes, *, secret: str = SECRETS["GH_SECRET"]):  # type: ignore[no-untyped-def]
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": "d-1",
            "X-GitHub-Event": "push"}


def shop_req(body: bytes, *, secret: str = SECRETS["SHOPIFY_SECRET"]):  # type: ignore[no-untyped-def]
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return {"X-Shopify-Hmac-Sha256": digest.decode(), "X-Shopify-Webhook-Id": "w-1"}


def tg_req(body: bytes, *, secret: str = SECRETS["TG_SECRET"]):  # type: ignore[no-untyped-def]
    return {"X-Telegram-Bot-Api-Secret-Token": secret}


JSON_BODY = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded",
                        "event_id": "Ev1", "update_id": 7}).encode()

SIGNERS = {"stripe": stripe_req, "slack": slack_req, "std": std_req, "gh": gh_req,
           "shop": shop_req, "tg": tg_req}
TIMED = ["stripe", "slack", "std"]


def post(client, slug: str, body: bytes, headers: dict, ctype: str = "application/json"):  # type: ignore[no-untyped-def]
    return client.post(f"/hooks/{slug}", data=body, headers=headers, content_type=ctype)


@pytest.mark.parametrize("slug", sorted(SIGNERS))
def test_valid_signature_is_accepted(providers, client, slug: str) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, slug, JSON_BODY, SIGNERS[slug](JSON_BODY))
    assert resp.status_code == 202, resp.get_json()
    assert stored(providers) == 1


@pytest.mark.parametrize("slug", sorted(SIGNERS))
def test_tampered_body_is_refused_and_not_stored(providers, client, slug: str) -> None:  # type: ignore[no-untyped-def]
    headers = SIGNERS[slug](JSON_BODY)
    resp = post(client, slug, JSON_BODY.replace(b"evt_1", b"evt_2"), headers)
    if slug == "tg":  # Telegram signs nothing: only the shared token is checked
        assert resp.status_code == 202
        return
    assert resp.status_code == 401
    body = resp.get_json()
    assert body["error"] == "verification_failed"
    assert "does not match" in body["message"]
    assert stored(providers) == 0


@pytest.mark.parametrize("slug", sorted(SIGNERS))
def test_wrong_secret_is_refused(providers, client, slug: str) -> None:  # type: ignore[no-untyped-def]
    other = "whsec_" + base64.b64encode(b"another-key-another-key-another!").decode()
    resp = post(client, slug, JSON_BODY, SIGNERS[slug](JSON_BODY, secret=other))
    assert resp.status_code == 401
    msg = resp.get_json()["message"]
    assert all(v not in msg for v in SECRETS.values())  # never echo a secret
    assert stored(providers) == 0


@pytest.mark.parametrize("slug", sorted(SIGNERS))
def test_missing_header_names_it(providers, client, slug: str) -> None:  # type: ignore[no-untyped-def]
    headers = SIGNERS[slug](JSON_BODY)
    first = next(iter(headers))
    del headers[first]
    resp = post(client, slug, JSON_BODY, headers)
    assert resp.status_code == 401
    assert first.lower() in resp.get_json()["message"].lower()
    assert stored(providers) == 0


@pytest.mark.parametrize("slug", TIMED)
@pytest.mark.parametrize("offset", [-301, 400])
def test_stale_and_future_timestamps_are_refused(providers, client, slug, offset) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, slug, JSON_BODY, SIGNERS[slug](JSON_BODY, ts=int(time.time()) + offset))
    assert resp.status_code == 401
    msg = resp.get_json()["message"]
    assert ("old" in msg) if offset < 0 else ("future" in msg)
    assert stored(providers) == 0


@pytest.mark.parametrize(("slug", "header", "value"), [
    ("stripe", "Stripe-Signature", "garbage"),
    ("stripe", "Stripe-Signature", "t=abc,v1=00"),
    ("slack", "X-Slack-Signature", "v1=abc"),
    ("slack", "X-Slack-Request-Timestamp", "yesterday"),
    ("std", "webhook-signature", "not-a-signature"),
    ("std", "webhook-timestamp", "soon"),
    ("gh", "X-Hub-Signature-256", "sha1=abc"),
])
def test_malformed_headers_are_refused(providers, client, slug, header, value) -> None:  # type: ignore[no-untyped-def]
    headers = SIGNERS[slug](JSON_BODY)
    headers[header] = value
    assert post(client, slug, JSON_BODY, headers).status_code == 401
    assert stored(providers) == 0


@pytest.mark.parametrize("slug", ["stripe", "slack", "std", "gh", "shop", "tg"])
def test_provider_retry_is_a_duplicate(providers, client, work, slug: str) -> None:  # type: ignore[no-untyped-def]
    first = post(client, slug, JSON_BODY, SIGNERS[slug](JSON_BODY))
    retry = post(client, slug, JSON_BODY, SIGNERS[slug](JSON_BODY))  # re-signed, same delivery
    assert first.status_code == 202
    assert retry.status_code == 200 and retry.get_json() == {
        "event_id": first.get_json()["event_id"], "duplicate": True}
    assert stored(providers) == 1


def test_standard_webhooks_key_rotation(providers, client) -> None:  # type: ignore[no-untyped-def]
    old = "whsec_" + base64.b64encode(b"the-old-key-the-old-key-the-old!").decode()
    ts = int(time.time())
    good = std_req(JSON_BODY, ts=ts, msg_id="msg_rot")["webhook-signature"]
    stale = std_req(JSON_BODY, ts=ts, secret=old, msg_id="msg_rot")["webhook-signature"]
    headers = {"webhook-id": "msg_rot", "webhook-timestamp": str(ts),
               "webhook-signature": f"{stale} {good}"}  # several signatures, one valid
    assert post(client, "std", JSON_BODY, headers).status_code == 202


def test_svix_header_names_work(providers, client) -> None:  # type: ignore[no-untyped-def]
    h = std_req(JSON_BODY)
    svix = {k.replace("webhook-", "svix-"): v for k, v in h.items()}
    assert post(client, "std", JSON_BODY, svix).status_code == 202


# -- Twilio: form parameters and JSON bodies, URL with and without port ----------------------
def test_twilio_form_signature_with_and_without_port(providers, client) -> None:  # type: ignore[no-untyped-def]
    params = {"From": "+15551234567", "Body": "hello bot", "MessageSid": "SM1",
              "To": "+15557654321"}
    body = urlencode(params).encode()
    v = RequestValidator(SECRETS["TWILIO_TOKEN"])
    for url in ("http://localhost/hooks/tw", "http://localhost:80/hooks/tw"):
        sig = v.compute_signature(url, params)
        resp = post(client, "tw", body, {"X-Twilio-Signature": sig,
                                         "I-Twilio-Idempotency-Token": url},
                    "application/x-www-form-urlencoded")
        assert resp.status_code == 202, (url, resp.get_json())
    bad = v.compute_signature("http://localhost/hooks/tw", {**params, "Body": "other"})
    resp = post(client, "tw", body, {"X-Twilio-Signature": bad},
                "application/x-www-form-urlencoded")
    assert resp.status_code == 401
    with Session(providers.db) as s:
        ev = s.exec(select(Event)).first()
    assert ev is not None and ev.body["Body"] == "hello bot"  # form fields become body


def test_twilio_json_body_sha256(providers, client) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"event": "call.completed"}).encode()
    digest = hashlib.sha256(body).hexdigest()
    url = f"http://localhost/hooks/tw?bodySHA256={digest}"
    sig = RequestValidator(SECRETS["TWILIO_TOKEN"]).compute_signature(url, {})
    ok = client.post(f"/hooks/tw?bodySHA256={digest}", data=body,
                     headers={"X-Twilio-Signature": sig}, content_type="application/json")
    assert ok.status_code == 202
    tampered = client.post(f"/hooks/tw?bodySHA256={digest}", data=body + b" ",
                           headers={"X-Twilio-Signature": sig}, content_type="application/json")
    assert tampered.status_code == 401 and "bodySHA256" in tampered.get_json()["message"]


# -- conventions ------------------------------------------------------------------------------
def test_slack_url_verification_is_answered_and_not_stored(providers, client) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9"
                       "CY3gmdALWMmHkvFXO7tYXAYM8P", "token": "x"}).encode()
    resp = post(client, "slack", body, slack_req(body))
    assert resp.status_code == 200
    assert resp.get_json() == {"challenge": json.loads(body)["challenge"]}
    assert stored(providers) == 0


def test_slack_interactive_payload_is_decoded(providers, client) -> None:  # type: ignore[no-untyped-def]
    payload = {"type": "block_actions", "actions": [{"value": "approve"}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    resp = post(client, "slack", body, slack_req(body), "application/x-www-form-urlencoded")
    assert resp.status_code == 202
    with Session(providers.db) as s:
        ev = s.exec(select(Event)).one()
    assert ev.body == {"payload": payload}


# -- an empty key verifies nothing (issue 12, item 6) -----------------------------------------
def store_as_is(rt, name: str, value: str) -> None:  # type: ignore[no-untyped-def]
    """Write a secret's row directly, as a database from before empty values were refused
    may hold it (SecretStore.set refuses them now)."""
    from engine.store.models import Secret
    from engine.store.secrets import cipher

    with Session(rt.db) as s:
        row = s.exec(select(Secret).where(Secret.name == name)).first() or Secret(name=name)
        row.value_encrypted = cipher(rt.settings.secret_key).encrypt(value.encode())
        s.add(row)
        s.commit()


GENERIC_SOURCES = """
sources:
  - {slug: mac, verify: {scheme: hmac, header: X-Sig, secret: MAC_KEY}}
  - {slug: tok, verify: {scheme: token, header: X-Token, secret: TOK_KEY}}
  - {slug: basic, verify: {scheme: basic, secret: BASIC_KEY}}
"""


def mac_req(body: bytes, *, secret: str):  # type: ignore[no-untyped-def]
    return {"X-Sig": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def basic_req(body: bytes, *, secret: str):  # type: ignore[no-untyped-def]
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}".encode()).decode()}


def empty_key_slack_req(body: bytes, *, secret: str):  # type: ignore[no-untyped-def]
    """Slack's signature by hand: its SDK refuses an empty signing secret."""
    ts = str(int(time.time()))
    mac = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac.hexdigest()}


def empty_key_std_req(body: bytes, *, secret: str):  # type: ignore[no-untyped-def]
    """A Standard Webhooks signature with the empty key (its SDK refuses to make one)."""
    ts, msg_id = str(int(time.time())), "msg_empty"
    mac = hmac.new(b"", f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": ts,
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


EMPTY_KEYED = {
    "gh": (gh_req, "GH_SECRET"), "shop": (shop_req, "SHOPIFY_SECRET"),
    "slack": (empty_key_slack_req, "SLACK_SIGNING"), "std": (empty_key_std_req, "STD_SECRET"),
    "stripe": (stripe_req, "STRIPE_WHSEC"), "tg": (tg_req, "TG_SECRET"),
    "mac": (mac_req, "MAC_KEY"), "tok": (lambda body, secret: {"X-Token": secret}, "TOK_KEY"),
    "basic": (basic_req, "BASIC_KEY"),
}


@pytest.mark.parametrize("blank", ["", "  \t"], ids=["empty", "whitespace"])
@pytest.mark.parametrize("slug", sorted(EMPTY_KEYED))
def test_an_empty_verify_secret_refuses_every_request(providers, client, tmp_path, slug,
                                                      blank) -> None:  # type: ignore[no-untyped-def]
    """A request signed with the empty key (what anyone can compute) is refused, with the
    reason, whatever the scheme."""
    f = tmp_path / "generic.yaml"
    f.write_text(GENERIC_SOURCES)
    apply_paths(providers.catalog, [f])
    signer, key = EMPTY_KEYED[slug]
    store_as_is(providers, key, blank)
    resp = post(client, slug, JSON_BODY, signer(JSON_BODY, secret=blank))
    assert resp.status_code == 401, resp.get_json()
    assert resp.get_json()["error"] == "verification_failed"
    assert f"verify secret '{key}' is " in resp.get_json()["message"]
    assert stored(providers) == 0


def test_a_missing_verify_secret_is_a_clear_401(providers, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "generic.yaml"
    f.write_text(GENERIC_SOURCES)
    apply_paths(providers.catalog, [f])
    resp = post(client, "mac", JSON_BODY, mac_req(JSON_BODY, secret=""))
    assert resp.status_code == 401
    assert "MAC_KEY" in resp.get_json()["message"]
    assert "not set" in resp.get_json()["message"]


def test_basic_with_an_empty_password_in_its_secret_refuses(providers, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "generic.yaml"
    f.write_text(GENERIC_SOURCES)
    apply_paths(providers.catalog, [f])
    providers.secrets.set("BASIC_KEY", "ada:")  # user ada, no password
    resp = post(client, "basic", JSON_BODY, basic_req(JSON_BODY, secret="ada:"))
    assert resp.status_code == 401 and "password" in resp.get_json()["message"]
