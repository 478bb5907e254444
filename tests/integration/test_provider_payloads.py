"""Realistic provider payloads (tests/data/providers/, written from the providers'
documented shapes) through every starter rule, end to end: each delivery is signed with
the provider's SDK (stripe, slack_sdk, twilio; GitHub and Shopify with the HMAC their
docs give), sent over real HTTP to ``POST /hooks/<source>`` of a running app
(``live_server``), carried out by a real worker, and the outgoing call is checked where
it lands: a loopback HTTP sink (or the SMTP sink, or the caller's own answer for the
chat bots). Deliveries a starter is not meant for (other GitHub events, a failed payment,
a bot's message, ...) are stored and run nothing.

The helpers (apply_starter, run_event, ...) are tests/integration/test_starters.py's, which
runs every starter on its own small sample; this file adds the providers' real shapes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text
from twilio.request_validator import RequestValidator

from engine.store.conversations import StateStore
from engine.store.queries import get_event
from tests.integration.test_starters import (
    STARTERS,
    apply_starter,
    fulfilments,
    run_event,
    set_secrets,
    step_statuses,
)
from tests.servers import Reply

DATA = Path(__file__).resolve().parents[1] / "data" / "providers"

# Every starter and the test here that runs it on the provider's realistic payloads.
REALISTIC = {
    "payment-notify": "test_stripe_events_through_payment_notify",
    "github-push-ci": "test_github_deliveries_through_push_ci",
    "shopify-order-to-shipping": "test_shopify_orders_create_to_shipping",
    "discord-alert": "test_alertmanager_firing_to_discord",
    "slack-slash-command": "test_slack_deliveries_through_the_slash_command_source",
    "telegram-bot": "test_telegram_updates_through_the_bot",
    "twilio-sms-reply": "test_twilio_sms_gets_its_twiml_answer",
    # a generic HMAC-signed shop (no provider: its sample is the payload; test_starters.py)
    "order-to-shipping": None,
}


def raw(rel: str) -> bytes:
    return (DATA / rel).read_bytes()


def doc(rel: str) -> Any:
    return json.loads(raw(rel))


@pytest.fixture
def http(live_server):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live_server, timeout=20) as c:
        yield c


def posted_in_thread(fn):  # type: ignore[no-untyped-def]
    """Run a blocking POST (a source answering with a reply step) while the test runs
    the worker; ``result["resp"]`` once the thread is done."""
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault("resp", fn()))
    t.start()
    return t, result


def event_of(rt, resp: httpx.Response) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == 202, resp.text
    info = get_event(rt.db, resp.json()["event_id"])
    assert info is not None
    return info


def ran_nothing(rt, work, resp: httpx.Response) -> dict:  # type: ignore[no-untyped-def]
    """The delivery was stored, the worker matched it against the rules, none matched."""
    event_id = resp.json()["event_id"]
    assert resp.status_code == 202, resp.text
    work(until=lambda: get_event(rt.db, event_id)["event"]["status"] != "pending")
    info = get_event(rt.db, event_id)
    assert info["executions"] == []
    assert info["matches"] and not any(m["matched"] for m in info["matches"]), info["matches"]
    return info


def test_every_starter_runs_on_realistic_payloads() -> None:
    assert {p.stem for p in STARTERS} == set(REALISTIC), "add the starter to REALISTIC"
    for name in filter(None, REALISTIC.values()):
        assert callable(globals()[name])


# -- GitHub: push, pull_request, issues, workflow_run, release, ping -------------------------
GH_SECRET = "gh-hook-secret: sp4ces & ünïcode"


def github_post(http, event: str, body: bytes, ctype: str = "application/json"):  # type: ignore[no-untyped-def]
    digest = hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {**doc("github/headers.json"), "X-GitHub-Event": event,
               "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": ctype,
               "X-Hub-Signature-256": f"sha256={digest}"}
    return http.post("/hooks/github", content=body, headers=headers)


PUSH_BUILD = {
    "repository": "acme-corp/widget-service",
    "clone_url": "https://github.com/acme-corp/widget-service.git",
    "branch": "main",
    "commit": "3e1f8b77c9f0a2d5b4c6e8a0f1d3b5c7e9a1b3d5",
    "previous": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
    "author": "Grace Hopper <grace@acme.example>",
    "message": "Handle “ünïcode” widget names\n\nThe name is NFC-normalised before lookup."
               "\n\nCo-authored-by: Katherine Johnson <kj@acme.example>",
    "title": "Handle “ünïcode” widget names",
    "url": "https://github.com/acme-corp/widget-service/commit/"
           "3e1f8b77c9f0a2d5b4c6e8a0f1d3b5c7e9a1b3d5",
    "pushed_by": "grace-h",
    "commits": 2,
}


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_github_deliveries_through_push_ci(rt, http, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "github-push-ci")
    set_secrets(rt, GITHUB_WEBHOOK_SECRET=GH_SECRET, DEPLOY_REQUEST_TOKEN="deploy-tok-1",
                CI_API_URL=sink.url, CI_TOKEN="ci-tok-1")
    sink.respond("/api/v1/builds", Reply(status=201, json={"id": 4242, "state": "queued"}))

    # a push to main, as a hook set to application/json and as one set to the form type
    push = raw("github/push.json")
    as_form = urlencode({"payload": push.decode()}).encode()
    pushes = []
    for body, ctype in ((push, "application/json"),
                        (as_form, "application/x-www-form-urlencoded")):
        info = run_event(work, rt, event_of(rt, github_post(http, "push", body, ctype))
                         ["event"]["id"])
        assert step_statuses(info) == {"request_deploy": "succeeded"}  # a deploy request
        assert info["event"]["body"] == json.loads(push)
        deploy = run_event(work, rt, info["executions"][0]["steps"][0]["output"]["event_id"])
        assert deploy["event"]["parent_id"] == info["event"]["id"]
        assert step_statuses(deploy) == {"trigger_build": "succeeded"}  # deploy-requested
        pushes.append(info["event"]["id"])
    first, second = sink.wait_for(2)
    for req, push_id in zip((first, second), pushes, strict=True):
        assert req.method == "POST" and req.path == "/api/v1/builds"
        assert req.headers["authorization"] == "Bearer ci-tok-1"
        assert req.json() == {**PUSH_BUILD, "requested_by": push_id}

    # every other documented event, a tag push and a branch deletion: stored, nothing runs
    for event in ("pull_request", "issues", "workflow_run", "release", "ping"):
        info = ran_nothing(rt, work, github_post(http, event, raw(f"github/{event}.json")))
        assert info["event"]["headers"]["x-github-event"] == event
    tag = {**doc("github/push.json"), "ref": "refs/tags/v2.4.0", "base_ref": "refs/heads/main"}
    deletion = {**doc("github/push.json"), "deleted": True, "head_commit": None,
                "after": "0" * 40, "commits": []}
    for body in (tag, deletion):
        ran_nothing(rt, work, github_post(http, "push", json.dumps(body).encode()))
    assert len(sink.requests) == 2

    # a body signed with another secret is refused and not stored
    bad = http.post("/hooks/github", content=push, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-Hub-Signature-256": "sha256=" + hmac.new(b"other", push, hashlib.sha256).hexdigest()})
    assert bad.status_code == 401


# -- Stripe: payment_intent.succeeded (and a failed one) ------------------------------------
STRIPE_WHSEC = "whsec_realistic_0123456789abcdefABCDEF"


def stripe_post(http, body: bytes):  # type: ignore[no-untyped-def]
    sig = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_WHSEC, int(time.time()))
    return http.post("/hooks/stripe", content=body, headers={
        "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sig,
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_stripe_events_through_payment_notify(rt, http, work, sink, smtp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "payment-notify",
                  {"base_url: https://slack.com/api": f"base_url: {sink.url}/api"})
    set_secrets(rt, STRIPE_WHSEC=STRIPE_WHSEC, SLACK_BOT_TOKEN="xoxb-realistic")
    with rt.db.begin() as c:
        c.execute(text("CREATE TABLE payments (payment_id VARCHAR(64) PRIMARY KEY, "
                       "amount INTEGER, currency VARCHAR(3), customer VARCHAR(64), "
                       "status VARCHAR(32))"))
    sink.respond("/api/chat.postMessage", Reply(json={"ok": True}))
    body = raw("stripe/payment_intent.succeeded.json")
    # receipt_email is ASCII-only here: an internationalised address needs SMTPUTF8
    body = body.replace("émile.zola@example.fr".encode(), b"emile.zola@example.fr")

    info = run_event(work, rt, event_of(rt, stripe_post(http, body))["event"]["id"])
    assert step_statuses(info) == {"save": "succeeded", "notify": "succeeded",
                                   "receipt": "succeeded"}
    [req] = sink.wait_for(1)
    assert req.path == "/api/chat.postMessage"
    assert req.headers["authorization"] == "Bearer xoxb-realistic"
    assert req.json() == {
        "channel": "#payments",
        "text": "Paid 42.50 EUR by emile.zola@example.fr (Invoice INV-2024-0518)",
        "metadata": {"event_type": "payment_succeeded",
                     "event_payload": {"payment_id": "pi_3PBx7dLkdIwHu7ix1wV4Rk2M",
                                       "amount": 4250, "currency": "eur"}},
    }
    with rt.db.connect() as c:
        rows = c.execute(text("SELECT payment_id, amount, currency, customer, status "
                              "FROM payments")).all()
    assert [tuple(r) for r in rows] == [
        ("pi_3PBx7dLkdIwHu7ix1wV4Rk2M", 4250, "eur", "cus_Q2rT9vWx1yZaBc", "succeeded")]
    [msg] = smtp.wait_for(1)
    assert msg["To"] == "emile.zola@example.fr"
    assert msg["Subject"] == "Receipt for your payment of 42.50 EUR"
    assert "Reference: Invoice INV-2024-0518" in msg.get_content()

    ran_nothing(rt, work, stripe_post(http, raw("stripe/payment_intent.payment_failed.json")))
    assert len(sink.requests) == 1


# -- Shopify: orders/create -----------------------------------------------------------------
SHOPIFY_SECRET = "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"


def test_shopify_orders_create_to_shipping(rt, http, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "shopify-order-to-shipping")
    set_secrets(rt, SHOPIFY_WEBHOOK_SECRET=SHOPIFY_SECRET, SHIPPING_API_URL=sink.url,
                SHIPPING_API_TOKEN="ship-tok-9")
    sink.handler = lambda req: Reply(status=201, json={
        "id": f"ful_{req.json()['sku']}",
        "tracking_url": f"https://track.example.com/{req.json()['sku']}"})
    body = raw("shopify/orders_create.json")
    digest = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest())
    headers = {**doc("shopify/orders_create.headers.json"), "Content-Type": "application/json",
               "X-Shopify-Hmac-Sha256": digest.decode()}
    resp = http.post("/hooks/shopify", content=body, headers=headers)
    info = run_event(work, rt, event_of(rt, resp)["event"]["id"])
    [ex] = info["executions"]
    assert ex["status"] == "succeeded", ex
    assert [s["step_id"] for s in ex["steps"] if s["parent_position"] is None] == [
        "order", "ship_items", "remember"]

    # one fulfilment per line item that ships (the digital warranty ships nothing)
    pro, stand = fulfilments(sink, ex, 2)
    recipient = {
        "name": "Kwame Mensah", "company": "TU Berlin", "email": "kwame.mensah@example.com",
        "phone": "+49 30 3140", "address1": "Straße des 17. Juni 135",
        "address2": "c/o TU Berlin, Raum H 2036", "city": "Berlin", "postal_code": "10623",
        "country": "DE",
    }
    for req in (pro, stand):
        assert req.path == "/v2/fulfillments"
        assert req.headers["authorization"] == "Bearer ship-tok-9"
        sent = req.json()
        assert (sent["reference"], sent["order_id"], sent["service"], sent["items"]) == (
            "acme-widgets.myshopify.com/#2087", 5839114522786, "standard", 2)
        assert sent["recipient"] == recipient
    assert [(r.json()["sku"], r.json()["quantity"], r.json()["weight_grams"], r.json()["item"])
            for r in (pro, stand)] == [("WDG-PRO-GRA", 2, 1800, 1), ("WDG-STAND", 1, 550, 2)]
    assert StateStore(rt.db).get("shopify-line-item-14620395176098") == {
        "order_id": 5839114522786, "sku": "WDG-PRO-GRA", "fulfillment_id": "ful_WDG-PRO-GRA",
        "tracking_url": "https://track.example.com/WDG-PRO-GRA"}
    assert StateStore(rt.db).get("shopify-order-5839114522786") == {
        "reference": "acme-widgets.myshopify.com/#2087",
        "line_items": [14620395176098, 14620395241634]}
    again = http.post("/hooks/shopify", content=body, headers=headers)  # Shopify's retry
    assert again.status_code == 200 and again.json()["duplicate"] is True


# -- Alertmanager → Discord ------------------------------------------------------------------
def test_alertmanager_firing_to_discord(rt, http, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "discord-alert")
    set_secrets(rt, ALERTS_TOKEN="am-bearer-7c1d",
                DISCORD_WEBHOOK_URL=f"{sink.url}/api/webhooks/99/tok")
    sink.respond("/api/webhooks/99/tok", Reply(json={"id": "1", "channel_id": "2"}))
    resp = http.post("/hooks/alerts", content=raw("alertmanager/firing.json"), headers={
        "Content-Type": "application/json", "Authorization": "Bearer am-bearer-7c1d",
        "User-Agent": "Alertmanager/0.27.0"})
    info = run_event(work, rt, event_of(rt, resp)["event"]["id"])
    assert step_statuses(info) == {"discord": "succeeded"}
    [req] = sink.wait_for(1)
    assert req.query == {"wait": "true"}
    sent = req.json()
    assert sent["content"] == "🔥 **FIRING**: DiskAlmostFull (1)"
    [embed] = sent["embeds"]
    assert embed == {
        "title": "Disk on the database host is almost full",
        "url": "http://prometheus.acme.internal:9090/graph?g0.expr=node_filesystem_avail_bytes"
               "+%3C+0.1&g0.tab=1",
        "description": "/var/lib/postgresql on db-1.acme.internal:9100 has 6.2% space left.",
        "color": 15548997,
        "fields": [{"name": "Severity", "value": "warning", "inline": True},
                   {"name": "Service", "value": "node", "inline": True},  # no service: job
                   {"name": "Instances", "value": "db-1.acme.internal:9100"}],
        "timestamp": "2024-05-02T13:20:10.482Z",
        "footer": {"text": 'discord-ops · {}:{alertname="DiskAlmostFull"}'},
    }


# -- Slack: slash command, Events API, interactive payload= ---------------------------------
SLACK_SECRET = "e3b0c44298fc1c149afbf4c8996fb924"


def slack_headers(body: bytes, ctype: str) -> dict:
    ts = str(int(time.time()))
    return {"Content-Type": ctype, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": SignatureVerifier(SLACK_SECRET).generate_signature(
                timestamp=ts, body=body),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}


def slack_post(http, body: bytes, ctype: str):  # type: ignore[no-untyped-def]
    return http.post("/hooks/slack-commands", content=body, headers=slack_headers(body, ctype))


FORM = "application/x-www-form-urlencoded"


def test_slack_deliveries_through_the_slash_command_source(rt, http, work, sink,  # type: ignore[no-untyped-def]
                                                           tmp_path) -> None:
    apply_starter(rt, tmp_path, "slack-slash-command")
    set_secrets(rt, SLACK_SIGNING_SECRET=SLACK_SECRET, WEATHER_API_URL=sink.url,
                WEATHER_API_TOKEN="wx-tok")
    sink.respond("/v1/current", Reply(json={"city": "São Paulo", "temp_c": 27,
                                            "summary": "parcialmente nublado"}))

    body = urlencode(doc("slack/slash_command.json")).encode()
    t, result = posted_in_thread(lambda: slack_post(http, body, FORM))
    work(until=lambda: not t.is_alive(), timeout=15)
    t.join()
    resp = result["resp"]
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"response_type": "in_channel",
                           "text": "Weather in São Paulo: 27 °C, parcialmente nublado "
                                   "(asked by <@U2147483697>)"}
    [lookup] = sink.wait_for(1)
    assert lookup.method == "GET" and lookup.query == {"city": "São Paulo"}  # trimmed
    assert lookup.headers["authorization"] == "Bearer wx-tok"

    # the Events API handshake is answered with its challenge and not stored
    hs = raw("slack/url_verification.json")
    resp = slack_post(http, hs, "application/json")
    assert resp.status_code == 200 and resp.json() == {"challenge": doc(
        "slack/url_verification.json")["challenge"]}

    # an Events API delivery and an interactive payload= reach the source, are stored with
    # their fields where rules expect them, match no slash command: the fallback answers
    for body, ctype, where in (
        (raw("slack/event_callback.json"), "application/json",
         lambda b: b["event"]["type"] == "app_mention" and b["event_id"] == "Ev08MFMKH6"),
        (urlencode({"payload": raw("slack/block_actions.json").decode()}).encode(), FORM,
         lambda b: b["payload"]["actions"][0]["value"] == "deploy:widget-service:v2.4.0"),
    ):
        t, result = posted_in_thread(lambda body=body, ctype=ctype: slack_post(http, body, ctype))
        work(until=lambda t=t: not t.is_alive(), timeout=15)
        t.join()
        resp = result["resp"]
        assert resp.status_code == 200
        assert resp.json() == {"response_type": "ephemeral", "text": "Working on it…"}
        event_id = resp.headers.get("X-Hookwise-Event-Id")
        assert event_id, resp.headers
        work(until=lambda event_id=event_id: get_event(rt.db, event_id)["event"]["status"]
             != "pending")
        info = get_event(rt.db, event_id)
        assert where(info["event"]["body"]) and info["executions"] == []
    assert len(sink.requests) == 1


# -- Telegram ---------------------------------------------------------------------------------
TG_TOKEN = "7001234567:AAH3k9vQ2xZc8bN1mL5pR7tY0wE4uI6oP2s"
TG_SECRET = "Tg_webhook-secret_42"


def tg_post(http, update: str):  # type: ignore[no-untyped-def]
    return http.post("/hooks/telegram", content=raw(f"telegram/{update}.json"), headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET})


def test_telegram_updates_through_the_bot(rt, http, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "telegram-bot",
                  {"base_url: https://api.telegram.org": f"base_url: {sink.url}"})
    set_secrets(rt, TELEGRAM_TOKEN=TG_TOKEN, TELEGRAM_SECRET=TG_SECRET)
    sink.respond(f"/bot{TG_TOKEN}/sendMessage", Reply(json={"ok": True, "result": {}}))

    def turn(update: str) -> list[dict]:
        before = len(sink.requests)
        info = run_event(work, rt, event_of(rt, tg_post(http, update))["event"]["id"])
        assert info["executions"][0]["status"] == "succeeded", info["executions"]
        sent = sink.requests[before:]
        assert all(r.path == f"/bot{TG_TOKEN}/sendMessage" for r in sent)
        return [r.json() for r in sent]

    [ask] = turn("start")
    assert ask["chat_id"] == 5123456789 and ask["text"] == "Hi! What's your name?"
    assert ask["reply_markup"]["force_reply"] is True
    [greet] = turn("reply_name")  # trimmed, sent as JSON (no HTML escaping needed)
    assert greet == {"chat_id": 5123456789,
                     "text": "Nice to meet you, Zoë <script>! Ask me /whoami any time."}
    assert StateStore(rt.db).get("telegram-5123456789") == {"stage": "done",
                                                            "name": "Zoë <script>"}
    # /whoami@bot in a group: another chat, so no memory of the name there
    [group] = turn("whoami_in_group")
    assert group == {"chat_id": -1001987654321,
                     "text": "I don't know you yet. Send /start and tell me your name."}
    # a bot's message and an edit (edited_message, no message) run nothing
    for update in ("from_a_bot", "edited_message"):
        ran_nothing(rt, work, tg_post(http, update))
    resp = http.post("/hooks/telegram", content=raw("telegram/start.json"),
                     headers={"Content-Type": "application/json"})
    assert resp.status_code == 401  # no secret token header


# -- Twilio: incoming SMS answered with TwiML (HMAC-SHA1 and HMAC-SHA256) ---------------------
TWILIO_TOKEN = "9f86d081884c7d659a2feaa0c55ad015"


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256"])
def test_twilio_sms_gets_its_twiml_answer(rt, http, live_server, work, tmp_path,  # type: ignore[no-untyped-def]
                                          algorithm) -> None:
    apply_starter(rt, tmp_path, "twilio-sms-reply")
    set_secrets(rt, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    params = doc("twilio/incoming_sms.json")
    url = f"{live_server}/hooks/twilio-sms"
    validator = RequestValidator(TWILIO_TOKEN)
    sig = validator.compute_signature(url, params, algorithm=algorithm)
    assert validator.validate(url, params, sig, algorithm=algorithm)
    headers = {"Content-Type": FORM, "X-Twilio-Signature": sig,
               "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
               "User-Agent": "TwilioProxy/1.1"}
    if algorithm == "HMAC_SHA256":
        headers["X-Twilio-Webhooks-Signature-Settings"] = (
            "key=webhooks_sharedkey_1a2b3c,algorithm=HMAC_SHA256")
    body = urlencode(params).encode()

    t, result = posted_in_thread(lambda: http.post("/hooks/twilio-sms", content=body,
                                                   headers=headers))
    work(until=lambda: not t.is_alive(), timeout=15)
    t.join()
    resp = result["resp"]
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/xml")
    message = ET.fromstring(resp.content).find("Message")
    assert message is not None and message.text is not None
    assert " ".join(message.text.split()) == (
        "Thanks, we got your message: “Is order A-99812 shipped? <3 & thanks”. "
        "We will get back to you at +14155550199 shortly.")
    assert b"&lt;3 &amp; thanks" in resp.content  # escaped in the TwiML
    info = get_event(rt.db, resp.headers["X-Hookwise-Event-Id"])
    assert info["event"]["body"]["MessageSid"] == params["MessageSid"]
    assert step_statuses(info) == {"answer": "succeeded"}

    # a STOP keyword is Twilio's own business: no rule answers, the empty fallback does
    stop = {**params, "Body": "stop", "MessageSid": "SM00000000000000000000000000000001"}
    sig = validator.compute_signature(url, stop, algorithm=algorithm)
    t, result = posted_in_thread(lambda: http.post(
        "/hooks/twilio-sms", content=urlencode(stop).encode(),
        headers={**headers, "X-Twilio-Signature": sig,
                 "I-Twilio-Idempotency-Token": str(uuid.uuid4())}))
    work(until=lambda: not t.is_alive(), timeout=15)
    t.join()
    assert result["resp"].status_code == 200
    assert ET.fromstring(result["resp"].content).find("Message") is None
