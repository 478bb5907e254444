"""Seed a throw-away Hookwise with realistic data and screenshot the dashboard and an
event page (1280×900) with Playwright and Debian's Chromium.

    python docs/make_screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]

Everything runs in a temporary data directory: SQLite, an embedded Redis (or
HOOKWISE_REDIS_URL), the SMTP sink of the tests. Webhooks are posted to the real ingest
endpoint with real signatures and carried out by a real RQ worker; only the *remote*
services the rules call (chat.example, crm.example, …) are answered in-process by an
httpx MockTransport, so the pictures show plausible URLs instead of loopback ports.
Afterwards the timestamps are spread over the last 24 hours so the charts have a shape.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import update  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from engine import runtime as runtime_mod  # noqa: E402
from engine.runtime import Runtime  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.store.db import upgrade  # noqa: E402
from engine.store.models import Event, Execution, MatchTrace, StepRun, utcnow  # noqa: E402
from engine.work.worker import make_worker  # noqa: E402
from rules.schema import parse_rule_file  # noqa: E402

EMAIL, PASSWORD = "ada@example.com", "correct horse battery"
SECRETS = {"STRIPE_WHSEC": "whsec_screenshot", "GITHUB_SECRET": "gh-secret",
           "SHOP_TOKEN": "shop-token", "CHAT_TOKEN": "xoxb-123-secret-chat-token",
           "CRM_API_KEY": "crm_live_4f8a9"}

CATALOG = """
sources:
  - slug: stripe
    description: Stripe account (live mode)
    verify: {scheme: stripe, secret: STRIPE_WHSEC}
  - slug: github
    description: hookwise/hookwise repository
    verify: {scheme: github, secret: GITHUB_SECRET}
  - slug: shop
    description: Storefront orders
    verify: {scheme: token, secret: SHOP_TOKEN, header: X-Shop-Token}
    dedup: {path: $.body.order_id}
rules:
  - name: big-payment-to-chat
    description: Post payments over $10 to #payments and thank the customer
    source: stripe
    priority: 10
    when:
      all:
        - {path: $.body.type, op: eq, value: payment_intent.succeeded}
        - {path: $.body.data.object.amount, op: gt, value: 1000}
        - any:
            - {path: $.body.data.object.currency, op: in, value: [usd, eur]}
            - not: {path: $.headers.x-test-mode, op: exists}
    actions:
      - id: notify
        type: webhook
        url: https://chat.example/api/chat.postMessage
        headers: {Authorization: "Bearer {{ secrets.CHAT_TOKEN }}"}
        json:
          channel: "#payments"
          text: "Paid {{ body.data.object.amount / 100 }} {{ body.data.object.currency | upper }}"
      - id: thanks
        type: email
        to: "{{ body.data.object.receipt_email }}"
        subject: Thanks for your payment
        text: "We received your payment (ref {{ steps.notify.json.ts }})."
        when: {path: $.body.data.object.receipt_email, op: exists}
  - name: refund-alert
    description: Page the on-call person about refunds
    source: stripe
    priority: 5
    when: {path: $.body.type, op: eq, value: charge.refunded}
    actions:
      - id: page
        type: webhook
        url: https://pager.example/v2/enqueue
        json: {summary: "Refund {{ body.data.object.id }}", severity: warning}
  - name: sync-customer-to-crm
    source: stripe
    when: {path: $.body.type, op: eq, value: customer.created}
    actions:
      - id: upsert
        type: webhook
        method: PUT
        url: "https://crm.example/v1/customers/{{ body.data.object.id }}"
        headers: {X-Api-Key: "{{ secrets.CRM_API_KEY }}"}
        json: {email: "{{ body.data.object.email }}", name: "{{ body.data.object.name }}"}
  - name: release-notes
    source: github
    when:
      all:
        - {path: $.headers.x-github-event, op: eq, value: release}
        - {path: $.body.action, op: eq, value: published}
    actions:
      - id: announce
        type: webhook
        url: https://chat.example/api/chat.postMessage
        json: {channel: "#releases", text: "{{ body.release.name }} is out"}
  - name: ci-failure-mail
    source: github
    when:
      all:
        - {path: $.headers.x-github-event, op: eq, value: workflow_run}
        - {path: $.body.workflow_run.conclusion, op: eq, value: failure}
    actions:
      - id: mail
        type: email
        to: dev-team@example.com
        subject: "CI failed on {{ body.workflow_run.head_branch }}"
        text: "{{ body.workflow_run.html_url }}"
  - name: order-to-fulfilment
    source: shop
    priority: 1
    when: {path: $.body.total, op: gt, value: 0}
    actions:
      - id: ship
        type: webhook
        url: https://fulfil.example/api/orders
        json: {order: "{{ body.order_id }}", items: "{{ body.items }}"}
"""


def remote(request: httpx.Request) -> httpx.Response:
    """The services the rules call, answered in-process."""
    host, path = request.url.host, request.url.path
    if host == "chat.example":
        return httpx.Response(200, json={"ok": True, "channel": "C04PAYMENTS",
                                         "ts": f"{time.time():.4f}"})
    if host == "crm.example":
        if path.endswith("9"):
            return httpx.Response(422, json={"error": "invalid_email",
                                             "message": "email is not deliverable"})
        return httpx.Response(201, json={"id": "crm_" + path.rsplit("_", 1)[-1]})
    if host == "pager.example":
        if "fail" in request.content.decode():
            return httpx.Response(503, headers={"Retry-After": "120"},
                                  json={"error": "overloaded"})
        return httpx.Response(202, json={"status": "queued", "incident": "INC-2291"})
    if host == "fulfil.example":
        if b'ord_001' in request.content:
            return httpx.Response(400, json={"error": "unknown SKU in items"})
        return httpx.Response(201, json={"shipment": "shp_" + str(random.randint(1000, 9999))})
    return httpx.Response(404)


def stripe_event(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.choices(["payment_intent.succeeded", "charge.refunded", "customer.created",
                        "invoice.paid"], weights=[6, 1, 2, 1])[0]
    if kind == "customer.created":
        obj: dict[str, Any] = {"id": f"cus_{rng.randint(10000, 99999)}", "object": "customer",
                               "email": f"customer{i}@example.org",
                               "name": rng.choice(["Grace Hopper", "Alan Turing",
                                                   "Katherine Johnson", "Edsger Dijkstra"])}
    elif kind == "charge.refunded":
        obj = {"id": f"ch_{'fail' if i % 7 == 0 else 'ok'}{i:04d}", "object": "charge",
               "amount_refunded": rng.choice([1200, 4900, 990])}
    else:
        obj = {"id": f"pi_3P{rng.randint(10**8, 10**9)}", "object": "payment_intent",
               "amount": rng.choice([500, 1900, 4900, 12900, 2500, 99900]),
               "currency": rng.choice(["usd", "usd", "eur", "gbp"]),
               "receipt_email": f"buyer{i}@example.org", "status": "succeeded"}
    return {"id": f"evt_1P{rng.randint(10**9, 10**10)}", "object": "event", "type": kind,
            "livemode": True, "created": int(time.time()), "data": {"object": obj}}


def post(client: Any, source: str, body: dict[str, Any], rng: random.Random) -> None:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Stripe/1.0"}
    if source == "stripe":
        t = str(int(time.time()))
        sig = hmac.new(SECRETS["STRIPE_WHSEC"].encode(), t.encode() + b"." + raw,
                       hashlib.sha256).hexdigest()
        headers["Stripe-Signature"] = f"t={t},v1={sig}"
    elif source == "github":
        headers["User-Agent"] = "GitHub-Hookshot/4b2e1c"
        headers["X-GitHub-Event"] = body.pop("_event")
        raw = json.dumps(body).encode()
        headers["X-GitHub-Delivery"] = f"{rng.getrandbits(128):032x}"
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(
            SECRETS["GITHUB_SECRET"].encode(), raw, hashlib.sha256).hexdigest()
    else:
        headers["User-Agent"] = "Storefront-Webhooks/2.3"
        headers["X-Shop-Token"] = SECRETS["SHOP_TOKEN"]
    r = client.post(f"/hooks/{source}", data=raw, headers=headers)
    assert r.status_code in (200, 202), (r.status_code, r.get_data(as_text=True))


def github_event(rng: random.Random, i: int) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"_event": "workflow_run", "action": "completed",
                "workflow_run": {"name": "CI", "head_branch": rng.choice(["main", "fix/retries"]),
                                 "conclusion": rng.choice(["success", "success", "failure"]),
                                 "html_url": f"https://github.com/hookwise/hookwise/actions/runs/{i}"}}
    return {"_event": "release", "action": rng.choice(["published", "created"]),
            "release": {"name": f"v0.{i % 9}.{i % 4}", "tag_name": f"v0.{i % 9}.{i % 4}"}}


def shop_event(rng: random.Random, i: int) -> dict[str, Any]:
    return {"order_id": f"ord_{i:04d}", "total": rng.choice([0, 19.9, 54.0, 120.5]),
            "currency": "EUR", "items": [{"sku": "TSHIRT-M", "qty": rng.randint(1, 3)}]}


def seed(rt: Runtime, app: Any, n_events: int) -> str:
    """Store sources, rules, secrets and ``n_events`` processed events; answer the id of
    the event the event-page screenshot shows."""
    rng = random.Random(7)
    for name, value in SECRETS.items():
        rt.secrets.set(name, value)
    doc = parse_rule_file(yaml.safe_load(CATALOG))
    rt.catalog.save(doc.sources, doc.rules)
    rt.accounts.create_user(EMAIL, PASSWORD)
    client = app.test_client()
    for i in range(n_events):
        source = rng.choices(["stripe", "github", "shop"], weights=[6, 2, 2])[0]
        body = {"stripe": stripe_event, "github": github_event, "shop": shop_event}[source](rng, i)
        post(client, source, body, rng)
    # the showcase: a big card payment, the newest event
    showcase = stripe_event(rng, 999)
    showcase["type"] = "payment_intent.succeeded"
    showcase["data"]["object"] = {
        "id": "pi_3PxQ2LJ8s1vT9Kd0", "object": "payment_intent", "amount": 12900,
        "currency": "usd", "receipt_email": "grace@example.org", "status": "succeeded",
        "customer": "cus_Q8f2kLmN", "description": "Team plan, annual"}
    post(client, "stripe", showcase, rng)
    for _ in range(3):
        make_worker(rt).work(burst=True, with_scheduler=True, logging_level="ERROR")
    spread_over_day(rt, rng)
    with Session(rt.db) as s:
        ev = s.exec(select(Event).order_by(col(Event.received_at).desc())).first()
        assert ev is not None
        return ev.id


def spread_over_day(rt: Runtime, rng: random.Random) -> None:
    """Move every event (and what happened to it) back in time, busier in daytime."""
    now = utcnow()
    with Session(rt.db) as s:
        events = list(s.exec(select(Event).order_by(col(Event.received_at))))
        n = len(events)
        offsets = sorted((rng.betavariate(1.3, 2.2) * 23.5 * 3600 for _ in range(n - 1)),
                         reverse=True) + [95.0]
        for ev, back in zip(events, offsets, strict=True):
            t = now - timedelta(seconds=back)
            shift = t - ev.received_at.replace(tzinfo=t.tzinfo)
            s.execute(update(Event).where(col(Event.id) == ev.id).values(
                received_at=t, processed_at=t + timedelta(milliseconds=180)))
            s.execute(update(MatchTrace).where(col(MatchTrace.event_id) == ev.id).values(
                created_at=t + timedelta(milliseconds=150)))
            for ex in s.exec(select(Execution).where(Execution.event_id == ev.id)).all():
                s.execute(update(Execution).where(col(Execution.id) == ex.id).values(
                    created_at=ex.created_at + shift, updated_at=ex.updated_at + shift,
                    finished_at=(ex.finished_at + shift) if ex.finished_at else None))
                for st in s.exec(select(StepRun).where(StepRun.execution_id == ex.id)).all():
                    s.execute(update(StepRun).where(col(StepRun.id) == st.id).values(
                        started_at=(st.started_at + shift) if st.started_at else None,
                        finished_at=(st.finished_at + shift) if st.finished_at else None))
        s.commit()


def screenshots(base: str, event_id: str, out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{base}/login")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/")
        page.screenshot(path=str(out / "dashboard.png"))
        page.goto(f"{base}/events/{event_id}")
        page.screenshot(path=str(out / "event.png"))
        browser.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--events", type=int, default=60)
    args = ap.parse_args()

    from werkzeug.serving import make_server

    from engine.broker.embedded import EmbeddedRedis
    from tests.servers import SmtpSink
    from web import create_app

    with tempfile.TemporaryDirectory() as tmp, SmtpSink() as smtp:
        redis_url = os.environ.get("HOOKWISE_REDIS_URL")
        embedded = None
        if not redis_url:
            embedded = EmbeddedRedis(Path(tmp) / "redis")
            redis_url = embedded.start()
        settings = Settings.from_env({
            "HOOKWISE_DATA_DIR": str(Path(tmp) / "data"),
            "HOOKWISE_REDIS_URL": redis_url,
            "HOOKWISE_SECRET_KEY": "screenshots",
            "HOOKWISE_SMTP_URL": smtp.url,
            "HOOKWISE_QUEUE": f"screenshots-{os.getpid()}",
        })
        upgrade(settings)
        rt = Runtime(settings)
        rt.__dict__["http"] = httpx.Client(transport=httpx.MockTransport(remote))
        runtime_mod.install(rt)
        try:
            app = create_app(runtime=rt)
            event_id = seed(rt, app, args.events)
            server = make_server("127.0.0.1", 0, app, threaded=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                screenshots(f"http://127.0.0.1:{server.server_port}", event_id,
                            Path(args.out), args.chromium)
            finally:
                server.shutdown()
            rt.queue.empty()
        finally:
            rt.close()
            if embedded is not None:
                embedded.stop()
    print(f"wrote {args.out}/dashboard.png and {args.out}/event.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
