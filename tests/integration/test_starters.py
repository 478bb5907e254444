"""Every starter rule in rules/templates/: its dry run passes on its sample (with its
sample headers), and it runs end to end, unmodified except for the secrets (and the
connections' base URLs) pointing its outgoing calls at loopback sinks, on a sample signed
exactly as the provider signs it.

The chat-bot starters (Slack, Telegram, Twilio) run end to end in
tests/integration/test_chatbots.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
import stripe
from click.testing import CliRunner
from sqlalchemy import text

from engine.store.conversations import StateStore
from engine.store.queries import get_event
from engine.store.rule_files import apply_paths
from tests.servers import Reply

TEMPLATES = Path(__file__).resolve().parents[2] / "rules" / "templates"
STARTERS = sorted(TEMPLATES.glob("*.yaml"))

# Where each starter runs end to end (a new starter without one fails the coverage test).
END_TO_END = {
    "payment-notify": "tests/test_starters.py::test_stripe_payment_notify",
    "github-push-ci": "tests/test_starters.py::test_github_push_to_main_triggers_ci",
    "shopify-order-to-shipping": "tests/test_starters.py::test_shopify_order_to_shipping",
    "order-to-shipping": "tests/test_starters.py::test_generic_shop_order_to_shipping",
    "discord-alert": "tests/test_starters.py::test_alert_to_discord",
    "slack-slash-command": "tests/test_chatbots.py::test_slash_command_answered_after_lookup",
    "telegram-bot": "tests/test_chatbots.py::test_telegram_conversation_remembers_then_forgets",
    "twilio-sms-reply": "tests/test_chatbots.py::test_twilio_sms_gets_escaped_twiml",
}


# -- helpers shared with tests/test_chatbots.py ------------------------------------------
def sample(name: str) -> Any:
    return json.loads((TEMPLATES / f"{name}.sample.json").read_text())


def sample_bytes(name: str) -> bytes:
    return (TEMPLATES / f"{name}.sample.json").read_bytes()


def sample_headers(name: str) -> dict[str, str]:
    f = TEMPLATES / f"{name}.headers.json"
    return json.loads(f.read_text()) if f.exists() else {}


def apply_starter(rt, tmp_path: Path, name: str, edits: dict[str, str] | None = None) -> None:  # type: ignore[no-untyped-def]
    """Apply the starter file as shipped; ``edits`` (old → new text) only where a test
    must change a value (a URL that is not a secret, a TTL)."""
    source = (TEMPLATES / f"{name}.yaml").read_text()
    for old, new in (edits or {}).items():
        assert old in source, f"{name}.yaml no longer contains {old!r}"
        source = source.replace(old, new)
    f = tmp_path / f"{name}.yaml"
    f.write_text(source)
    apply_paths(rt.catalog, [f])


def set_secrets(rt, **values: str) -> None:  # type: ignore[no-untyped-def]
    for k, v in values.items():
        rt.secrets.set(k, v)


def run_event(work, rt, event_id: str, timeout: float = 10) -> dict:  # type: ignore[no-untyped-def]
    """Run workers until the event's executions are finished; the event's full record."""
    def done() -> bool:
        info = get_event(rt.db, event_id)
        return bool(info and info["executions"]) and all(
            ex["status"] in ("succeeded", "failed") for ex in info["executions"])

    work(until=done, timeout=timeout)
    info = get_event(rt.db, event_id)
    assert info is not None
    return info


def step_statuses(info: dict) -> dict[str, str]:
    [ex] = info["executions"]
    return {s["step_id"]: s["status"] for s in ex["steps"]}


# -- dry runs ------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from cli.main import main

    for key in ("HOOKWISE_DATABASE_URL", "HOOKWISE_REDIS_URL", "HOOKWISE_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOOKWISE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("rule_file", STARTERS, ids=lambda p: p.stem)
def test_starter_passes_hookwise_test_with_its_sample_headers(cli, rule_file: Path) -> None:  # type: ignore[no-untyped-def]
    name = rule_file.stem
    header_args = [a for k, v in sample_headers(name).items() for a in ("--header", f"{k}:{v}")]
    res = cli("test", str(rule_file), "--payload", str(TEMPLATES / f"{name}.sample.json"),
              *header_args)
    assert res.exit_code == 0, res.output
    assert "MATCHED" in res.output and "PASS" in res.output and "FAIL" not in res.output
    assert "would send" in res.output and "ERROR" not in res.output


def test_every_starter_has_a_sample_and_an_end_to_end_test() -> None:
    names = {p.stem for p in STARTERS}
    assert names == set(END_TO_END), "add the new starter's end-to-end test to END_TO_END"
    for name in names:
        assert (TEMPLATES / f"{name}.sample.json").exists()
    # one instance can hold all starters: slugs and rule names do not collide
    from rules.schema import load_rule_file

    slugs = [s.slug for p in STARTERS for s in load_rule_file(p).sources]
    rules = [r.name for p in STARTERS for r in load_rule_file(p).rules]
    assert len(slugs) == len(set(slugs)) and len(rules) == len(set(rules))


# -- Stripe: payment succeeded → DB row + Slack message + receipt email ---------------------
# (kept for tests/integration/test_provider_payloads.py, which imports it)
OUT_SIGNING = "whsec_" + base64.b64encode(b"hookwise-starter-outgoing-key-32").decode()
SLACK_BOT_TOKEN = "xoxb-1234-5678-starter-bot-token"
STRIPE_TEST_WHSEC = "whsec_starter_test_0123456789"


def stripe_post(client, event: dict | bytes):  # type: ignore[no-untyped-def]
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    sig = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_TEST_WHSEC, int(time.time()))
    return client.post("/hooks/stripe", data=body, content_type="application/json",
                       headers={"Stripe-Signature": sig})


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_stripe_payment_notify(rt, client, work, sink, smtp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Slack's Web API is the sink: the connection's base URL points at it
    apply_starter(rt, tmp_path, "payment-notify",
                  {"base_url: https://slack.com/api": f"base_url: {sink.url}/api"})
    set_secrets(rt, STRIPE_WHSEC=STRIPE_TEST_WHSEC, SLACK_BOT_TOKEN=SLACK_BOT_TOKEN)
    with rt.db.begin() as c:
        c.execute(text("CREATE TABLE payments (payment_id VARCHAR(64) PRIMARY KEY, "
                       "amount INTEGER, currency VARCHAR(3), customer VARCHAR(64), "
                       "status VARCHAR(32))"))
    sink.respond("/api/chat.postMessage", Reply(json={"ok": True, "channel": "C0PAYMENTS",
                                                      "ts": "1712914268.000100"}))

    body = sample_bytes("payment-notify")
    resp = stripe_post(client, body)
    assert resp.status_code == 202, resp.get_json()
    info = run_event(work, rt, resp.get_json()["event_id"])
    assert info["executions"][0]["status"] == "succeeded", info["executions"]
    assert step_statuses(info) == {"save": "succeeded", "notify": "succeeded",
                                   "receipt": "succeeded"}

    [req] = sink.wait_for(1)
    assert req.method == "POST" and req.path == "/api/chat.postMessage"
    assert req.headers["authorization"] == f"Bearer {SLACK_BOT_TOKEN}"  # from the connection
    assert req.headers["content-type"].startswith("application/json")
    assert req.json() == {
        "channel": "#payments",
        "text": "Paid 25.99 USD by jenny.rosen@example.com (Order #1042)",
        "metadata": {"event_type": "payment_succeeded",
                     "event_payload": {"payment_id": "pi_3OqQ8vLkdIwHu7ix0dS9nF4k",
                                       "amount": 2599, "currency": "usd"}},
    }
    [notify] = [s for s in info["executions"][0]["steps"] if s["step_id"] == "notify"]
    assert notify["output"]["json"]["ts"] == "1712914268.000100"  # Slack's answer, recorded
    assert SLACK_BOT_TOKEN not in json.dumps(notify)  # the token never enters a record

    with rt.db.connect() as c:
        rows = c.execute(text("SELECT payment_id, amount, currency, customer, status "
                              "FROM payments")).all()
    assert [tuple(r) for r in rows] == [
        ("pi_3OqQ8vLkdIwHu7ix0dS9nF4k", 2599, "usd", "cus_PfR2Xq8kC1vNzL", "succeeded")]

    [msg] = smtp.wait_for(1)
    assert msg["To"] == "jenny.rosen@example.com"
    assert msg["Subject"] == "Receipt for your payment of 25.99 USD"
    content = msg.get_content()
    assert "pi_3OqQ8vLkdIwHu7ix0dS9nF4k" in content and "Reference: Order #1042" in content

    # Stripe's retry of the same event is a duplicate; a new event for the same payment
    # upserts the one row
    again = stripe_post(client, body)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    event = sample("payment-notify")
    event["id"] = "evt_3OqQ8vLkdIwHu7ix0pT1hR2y"
    resp2 = stripe_post(client, event)
    assert resp2.status_code == 202
    assert run_event(work, rt, resp2.get_json()["event_id"])["executions"][0]["status"] \
        == "succeeded"
    with rt.db.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM payments")).scalar() == 1
    assert len(sink.requests) == 2 and len(smtp.wait_for(2)) == 2

    # Slack refusing the message (HTTP 200, ok: false) is a failure with Slack's error:
    # the payment is recorded, nobody gets a receipt for it
    sink.respond("/api/chat.postMessage", Reply(json={"ok": False,
                                                      "error": "channel_not_found"}))
    event = sample("payment-notify")
    event["id"] = "evt_3OqQ8vLkdIwHu7ix0pT1hR2z"
    event["data"]["object"]["id"] = "pi_3OqQ8vLkdIwHu7ix0dS9nF4z"
    resp3 = stripe_post(client, event)
    assert resp3.status_code == 202
    info = run_event(work, rt, resp3.get_json()["event_id"])
    [ex] = info["executions"]
    assert ex["status"] == "failed"
    steps = {s["step_id"]: s for s in ex["steps"]}
    assert steps["save"]["status"] == "succeeded"
    assert steps["notify"]["status"] == "failed"
    assert steps["notify"]["error"] == "slack answered ok: false: channel_not_found"
    assert steps["notify"]["attempts"] == 1  # not worth another attempt
    assert steps["receipt"]["status"] != "succeeded"
    assert len(sink.requests) == 3
    with rt.db.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM payments")).scalar() == 2
    assert len(smtp.messages) == 2


# -- GitHub: push to main → a deploy request (emit) → CI build ------------------------
GH_SECRET = "It's a Secret to Everybody"


def github_headers(body: bytes, event: str = "push", delivery: str | None = None) -> dict:
    digest = hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {**sample_headers("github-push-ci"), "X-GitHub-Event": event,
               "X-Hub-Signature-256": f"sha256={digest}"}
    if delivery:
        headers["X-GitHub-Delivery"] = delivery
    return headers


DEPLOY_TOKEN = "deploy-request-token-5f1c9a"
DEPLOY_REQUEST = {  # what github-push-ci emits for the sample push
    "repository": {"full_name": "octocat/Hello-World",
                   "clone_url": "https://github.com/octocat/Hello-World.git"},
    "ref": "refs/heads/main",
    "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "head_commit": {
        "message": "Fix the greeting\n\nSay hello to the whole world, not just to Ada.",
        "url": "https://github.com/octocat/Hello-World/commit/"
               "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "author": {"name": "Monalisa Octocat", "email": "mona@github.com"},
    },
    "pusher": {"name": "octocat"},
    "commits": ["0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"],
}


def test_github_push_to_main_triggers_ci(rt, client, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "github-push-ci")
    set_secrets(rt, GITHUB_WEBHOOK_SECRET=GH_SECRET, DEPLOY_REQUEST_TOKEN=DEPLOY_TOKEN,
                CI_API_URL=sink.url, CI_TOKEN="ci-tok")
    sink.respond("/api/v1/builds", Reply(status=201, json={"id": 981, "state": "queued"}))

    # the push: github-push-ci emits a deploy request on the deploys source
    body = sample_bytes("github-push-ci")
    resp = client.post("/hooks/github", data=body, content_type="application/json",
                       headers=github_headers(body))
    assert resp.status_code == 202, resp.get_json()
    push_id = resp.get_json()["event_id"]
    push = run_event(work, rt, push_id)
    [push_ex] = push["executions"]
    assert (push_ex["rule_name"], push_ex["status"]) == ("github-push-ci", "succeeded")
    assert step_statuses(push) == {"request_deploy": "succeeded"}
    emitted = push_ex["steps"][0]["output"]
    assert emitted["source"] == "deploys" and emitted["depth"] == 1

    # the deploy request is an event of its own, stored with its parent, linked both ways
    deploy_id = emitted["event_id"]
    assert deploy_id != push_id
    deploy = run_event(work, rt, deploy_id)
    assert deploy["event"]["source"] == "deploys"
    assert deploy["event"]["parent_id"] == push_id and deploy["event"]["emitted"] is True
    assert deploy["event"]["headers"]["x-hookwise-emitted-by"] == push_id
    assert deploy["event"]["body"] == DEPLOY_REQUEST
    assert get_event(rt.db, push_id)["event"]["emitted_events"] == [deploy_id]

    # deploy-requested, on the deploys source, makes the CI call
    [deploy_ex] = deploy["executions"]
    assert (deploy_ex["rule_name"], deploy_ex["status"]) == ("deploy-requested", "succeeded")
    assert step_statuses(deploy) == {"trigger_build": "succeeded"}
    [req] = sink.wait_for(1)
    assert req.method == "POST" and req.path == "/api/v1/builds"
    assert req.headers["authorization"] == "Bearer ci-tok"
    assert req.headers["idempotency-key"] == f"{deploy_ex['id']}:trigger_build"
    assert req.json() == {
        "repository": "octocat/Hello-World",
        "clone_url": "https://github.com/octocat/Hello-World.git",
        "branch": "main",
        "commit": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "previous": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "author": "Monalisa Octocat <mona@github.com>",
        "message": "Fix the greeting\n\nSay hello to the whole world, not just to Ada.",
        "title": "Fix the greeting",
        "url": "https://github.com/octocat/Hello-World/commit/"
               "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "pushed_by": "octocat",
        "commits": 1,
        "requested_by": push_id,  # the push that asked for it
    }

    # a redelivery (same X-GitHub-Delivery) runs nothing; a push to another branch and a
    # non-push event request no deploy
    assert client.post("/hooks/github", data=body, content_type="application/json",
                       headers=github_headers(body)).status_code == 200
    other = json.loads(body)
    other["ref"] = "refs/heads/feature/x"
    other_body = json.dumps(other).encode()
    for event_body, headers in (
        (other_body, github_headers(other_body, delivery="d-branch")),
        (body, github_headers(body, event="create", delivery="d-create")),
    ):
        r = client.post("/hooks/github", data=event_body, content_type="application/json",
                        headers=headers)
        assert r.status_code == 202
        work()
        info = get_event(rt.db, r.get_json()["event_id"])
        assert info["executions"] == [] and info["event"]["emitted_events"] == []
    assert len(sink.requests) == 1

    # the deploys source is not open: a request without the token is refused; with it,
    # the same rule builds (requested by its own event); a malformed one builds nothing
    manual = {**DEPLOY_REQUEST, "ref": "refs/heads/hotfix",
              "after": "1111111111111111111111111111111111111111"}
    assert client.post("/hooks/deploys", json=manual).status_code == 401
    r = client.post("/hooks/deploys", json=manual,
                    headers={"Authorization": f"Bearer {DEPLOY_TOKEN}"})
    assert r.status_code == 202, r.get_json()
    by_hand = run_event(work, rt, r.get_json()["event_id"])
    assert by_hand["event"]["parent_id"] is None
    assert step_statuses(by_hand) == {"trigger_build": "succeeded"}
    sent = sink.wait_for(2)[1].json()
    assert (sent["branch"], sent["commit"], sent["requested_by"]) == (
        "hotfix", "1111111111111111111111111111111111111111", r.get_json()["event_id"])
    r = client.post("/hooks/deploys", json={**manual, "after": "not-a-sha"},
                    headers={"Authorization": f"Bearer {DEPLOY_TOKEN}"})
    assert r.status_code == 202
    work()
    assert get_event(rt.db, r.get_json()["event_id"])["executions"] == []
    assert len(sink.requests) == 2


# -- Shopify: order created → one fulfilment call per line item to ship -------------------
SHOPIFY_SECRET = "shpss_starter_test_secret"


def shopify_post(client, order: dict, webhook_id: str | None = None):  # type: ignore[no-untyped-def]
    body = json.dumps(order).encode()
    digest = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest())
    headers = {**sample_headers("shopify-order-to-shipping"),
               "X-Shopify-Hmac-Sha256": digest.decode()}
    if webhook_id:
        headers["X-Shopify-Webhook-Id"] = webhook_id
    return client.post("/hooks/shopify", data=body, content_type="application/json",
                       headers=headers)


def fulfilment_service(req) -> Reply | None:  # type: ignore[no-untyped-def]
    """The shipping API: one fulfilment per line item, named after its SKU."""
    if req.path != "/ship/v2/fulfillments":
        return None
    sku = req.json()["sku"]
    return Reply(status=201, json={"id": f"ful_{sku}",
                                   "tracking_url": f"https://track.example.com/{sku}"})


def item_rows(info: dict) -> list[tuple]:
    """(item index, step id, status) of the steps inside the foreach, in order."""
    [ex] = info["executions"]
    [block] = [s for s in ex["steps"] if s["step_id"] == "ship_items"]
    return sorted((s["item_index"], s["step_id"], s["status"]) for s in ex["steps"]
                  if s["parent_position"] == block["position"])


def fulfilments(sink, ex: dict, count: int) -> list:  # type: ignore[no-untyped-def]
    """The fulfilment calls of execution ``ex``: exactly ``count``, in item order, each
    with the Idempotency-Key that names its item."""
    calls = sink.wait_for(count)
    assert len(sink.requests) == count
    assert [r.headers["idempotency-key"] for r in calls] == [
        f"{ex['id']}:fulfil:{i}" for i in range(count)]
    return calls


def test_shopify_order_to_shipping(rt, client, api, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "shopify-order-to-shipping")
    set_secrets(rt, SHOPIFY_WEBHOOK_SECRET=SHOPIFY_SECRET, SHIPPING_API_URL=sink.url + "/ship",
                SHIPPING_API_TOKEN="ship-tok")
    sink.handler = fulfilment_service

    body = sample_bytes("shopify-order-to-shipping")
    digest = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest())
    headers = {**sample_headers("shopify-order-to-shipping"),
               "X-Shopify-Hmac-Sha256": digest.decode()}
    resp = client.post("/hooks/shopify", data=body, content_type="application/json",
                       headers=headers)
    assert resp.status_code == 202, resp.get_json()
    info = run_event(work, rt, resp.get_json()["event_id"])
    [ex] = info["executions"]
    assert ex["status"] == "succeeded", ex
    top = [(s["step_id"], s["status"]) for s in ex["steps"] if s["parent_position"] is None]
    assert top == [("order", "succeeded"), ("ship_items", "succeeded"),
                   ("remember", "succeeded")]
    # two line items need shipping (the gift card does not): each ran its own steps
    assert item_rows(info) == [(0, "fulfil", "succeeded"), (0, "remember_item", "succeeded"),
                               (1, "fulfil", "succeeded"), (1, "remember_item", "succeeded")]

    # one fulfilment call per shippable line item, in order, each with its own key
    mug, tee = fulfilments(sink, ex, 2)
    recipient = {
        "name": "Ada Lovelace", "company": "", "email": "ada@example.com",
        "phone": "+44 20 7946 0018", "address1": "12 St James's Square", "address2": "",
        "city": "London", "postal_code": "SW1Y 4JH", "country": "GB",
    }
    for req in (mug, tee):
        assert req.method == "POST" and req.path == "/ship/v2/fulfillments"
        assert req.headers["authorization"] == "Bearer ship-tok"
    assert mug.json() == {
        "reference": "hookwise-demo.myshopify.com/#1042", "order_id": 5521908843,
        "line_item_id": 13601140031, "sku": "MUG-BLK-350", "title": "Black mug - 350 ml",
        "quantity": 2, "weight_grams": 840, "item": 1, "items": 2, "service": "express",
        "recipient": recipient,
    }
    assert tee.json() == {
        "reference": "hookwise-demo.myshopify.com/#1042", "order_id": 5521908843,
        "line_item_id": 13601140032, "sku": "TEE-WHT-M", "title": "White tee - M",
        "quantity": 1, "weight_grams": 180, "item": 2, "items": 2, "service": "express",
        "recipient": recipient,
    }
    # each item remembers its own fulfilment; the order remembers its items
    states = StateStore(rt.db)
    assert states.get("shopify-line-item-13601140031") == {
        "order_id": 5521908843, "sku": "MUG-BLK-350", "fulfillment_id": "ful_MUG-BLK-350",
        "tracking_url": "https://track.example.com/MUG-BLK-350"}
    assert states.get("shopify-line-item-13601140032") == {
        "order_id": 5521908843, "sku": "TEE-WHT-M", "fulfillment_id": "ful_TEE-WHT-M",
        "tracking_url": "https://track.example.com/TEE-WHT-M"}
    assert states.get("shopify-line-item-13601140033") == {}  # the gift card
    assert states.get("shopify-order-5521908843") == {
        "reference": "hookwise-demo.myshopify.com/#1042",
        "line_items": [13601140031, 13601140032]}

    # Shopify's retry (same X-Shopify-Webhook-Id) is a duplicate
    again = client.post("/hooks/shopify", data=body, content_type="application/json",
                        headers=headers)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True

    # Another order whose second item the shipping API refuses once: the first item is
    # not sent again when the execution is retried, the second goes with the same key.
    order = sample("shopify-order-to-shipping")
    order.update(id=5521908999, name="#1043", shipping_lines=[])
    order["line_items"].reverse()  # the gift card first: it is left out of the items
    refused: list[str] = []

    def refuse_the_mug_once(req):  # type: ignore[no-untyped-def]
        if req.path.endswith("/fulfillments") and req.json()["sku"] == "MUG-BLK-350" \
                and not refused:
            refused.append(req.headers["idempotency-key"])
            return Reply(status=422, json={"error": "address not verified"})
        return fulfilment_service(req)

    sink.handler = refuse_the_mug_once
    resp = shopify_post(client, order, webhook_id="wh-1043")
    assert resp.status_code == 202, resp.get_json()
    info = run_event(work, rt, resp.get_json()["event_id"])
    [ex] = info["executions"]
    assert ex["status"] == "failed"
    assert item_rows(info) == [(0, "fulfil", "succeeded"), (0, "remember_item", "succeeded"),
                               (1, "fulfil", "failed"), (1, "remember_item", "pending")]
    [failed] = [s for s in ex["steps"] if s["status"] == "failed" and s["step_id"] == "fulfil"]
    assert "422" in (failed["error"] or "")
    new = [r.json() for r in sink.requests[2:]]
    assert [(r["sku"], r["item"], r["service"]) for r in new] == [
        ("TEE-WHT-M", 1, "standard"), ("MUG-BLK-350", 2, "standard")]  # the order's order
    assert refused == [f"{ex['id']}:fulfil:1"]
    assert states.get("shopify-order-5521908999") == {}  # not every item went out

    assert api.post(f"/api/v1/executions/{ex['id']}/retry").status_code == 202
    info = run_event(work, rt, resp.get_json()["event_id"])
    [ex] = info["executions"]
    assert ex["status"] == "succeeded", ex
    retried = sink.requests[4:]
    assert [(r.json()["sku"], r.headers["idempotency-key"]) for r in retried] == [
        ("MUG-BLK-350", f"{ex['id']}:fulfil:1")]  # only the refused item, with its own key
    assert states.get("shopify-line-item-13601140031")["fulfillment_id"] == "ful_MUG-BLK-350"
    assert states.get("shopify-order-5521908999")["line_items"] == [13601140032, 13601140031]


def test_generic_shop_order_to_shipping(rt, client, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # this starter's shipping URL is a literal (tests/test_cli.py checks it), so it is
    # rewritten to the sink here
    apply_starter(rt, tmp_path, "order-to-shipping",
                  {"https://shipping.example.com": sink.url})
    set_secrets(rt, SHOP_WEBHOOK_SECRET="shop-secret", SHIPPING_API_TOKEN="ship-tok")
    sink.respond("/api/v2/shipments", Reply(status=201, json={
        "id": "shp_1", "tracking_url": "https://track.example.com/shp_1"}))

    body = sample_bytes("order-to-shipping")
    digest = hmac.new(b"shop-secret", body, hashlib.sha256).hexdigest()
    resp = client.post("/hooks/shop", data=body, content_type="application/json",
                       headers={"X-Shop-Signature": f"sha256={digest}"})
    assert resp.status_code == 202, resp.get_json()
    info = run_event(work, rt, resp.get_json()["event_id"])
    assert step_statuses(info) == {"create_shipment": "succeeded", "remember": "succeeded"}
    [req] = sink.wait_for(1)
    sent = req.json()
    assert sent["reference"] == "order-1042" and sent["service"] == "express"
    assert sent["items"] == ["MUG-BLK-350", "TEE-WHT-M"]
    assert sent["recipient"]["name"] == "Ada Lovelace"
    assert StateStore(rt.db).get("order-5521908843")["shipment_id"] == "shp_1"


# -- Alertmanager → Discord --------------------------------------------------------------
def test_alert_to_discord(rt, client, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "discord-alert")
    set_secrets(rt, ALERTS_TOKEN="alert-token-123",
                DISCORD_WEBHOOK_URL=f"{sink.url}/api/webhooks/1234/wh-token")
    sink.respond("/api/webhooks/1234/wh-token", Reply(json={"id": "1228", "channel_id": "9"}))

    body = sample_bytes("discord-alert")
    refused = client.post("/hooks/alerts", data=body, content_type="application/json",
                          headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    resp = client.post("/hooks/alerts", data=body, content_type="application/json",
                       headers={"Authorization": "Bearer alert-token-123"})
    assert resp.status_code == 202, resp.get_json()
    info = run_event(work, rt, resp.get_json()["event_id"])
    assert step_statuses(info) == {"discord": "succeeded"}

    [req] = sink.wait_for(1)
    assert req.query == {"wait": "true"}
    sent = req.json()
    assert sent["content"] == "🔥 **FIRING**: HighErrorRate (2)"
    assert sent["allowed_mentions"] == {"parse": []}
    [embed] = sent["embeds"]
    assert embed["title"] == "Checkout API error rate above 5%"
    assert embed["color"] == 15548997  # red
    assert embed["description"].splitlines() == [
        "7.3% of requests on checkout-7d9f8b6c5-x2k4q failed in the last 5 minutes.",
        "6.1% of requests on checkout-7d9f8b6c5-9hq2m failed in the last 5 minutes."]
    assert embed["fields"] == [
        {"name": "Severity", "value": "critical", "inline": True},
        {"name": "Service", "value": "checkout", "inline": True},
        {"name": "Instances",
         "value": "checkout-7d9f8b6c5-x2k4q:8080, checkout-7d9f8b6c5-9hq2m:8080"}]
    assert embed["timestamp"] == "2024-04-12T09:31:07.123Z"

    # resolved: green, and an alert without a description still renders
    resolved = sample("discord-alert")
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
        alert["annotations"].pop("description")
    r = client.post("/hooks/alerts", data=json.dumps(resolved), content_type="application/json",
                    headers={"Authorization": "Bearer alert-token-123"})
    run_event(work, rt, r.get_json()["event_id"])
    second = sink.wait_for(2)[1].json()
    assert second["content"].startswith("✅ **RESOLVED**")
    assert second["embeds"][0]["color"] == 5763719 and second["embeds"][0]["description"] == ""
