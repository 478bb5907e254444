"""The HTML UI through the Flask test client: every page needs a login, renders, and its
forms post with the CSRF token from the page; errors are shown beside their field."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from engine.runtime import Runtime
from engine.store.accounts import setup_token
from engine.store.queries import get_event
from engine.store.rule_files import apply_paths
from tests.conftest import USER_EMAIL, USER_PASSWORD
from tests.servers import Reply, free_port
from web import create_app

PAGES = ["/", "/dashboard/live", "/sources", "/sources/new", "/rules", "/events",
         "/secrets", "/events/evt_nope"]

RULES = """
sources:
  - slug: shop
    dedup: {path: $.body.id}
rules:
  - name: paid-order
    source: shop
    priority: 3
    when:
      all:
        - {path: $.body.type, op: eq, value: order.paid}
        - {path: $.body.total, op: gt, value: 100}
    actions:
      - id: notify
        type: webhook
        url: "SINK_URL/orders"
        headers: {Authorization: "Bearer {{ secrets.SINK_TOKEN }}"}
        json: {order: "{{ body.id }}"}
  - name: refunds
    source: shop
    when: {path: $.body.type, op: eq, value: order.refunded}
    actions:
      - {id: wait, type: delay, seconds: 0}
"""


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def text_of(resp) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(resp.get_data(as_text=True))


def log_in(client):  # type: ignore[no-untyped-def]
    """Log ``client`` in through the login form (as the ``user`` fixture's user)."""
    page = client.get("/login").get_data(as_text=True)
    r = client.post("/login", data={"email": USER_EMAIL, "password": USER_PASSWORD,
                                    "csrf_token": csrf_of(page)})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    return client


@pytest.fixture
def ui(client, user):  # type: ignore[no-untyped-def]
    """The test client, logged in through the login form."""
    return log_in(client)


def post_form(client, url: str, data: dict, *, page: str | None = None, **kw):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get(page or url).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token}, **kw)


@pytest.fixture
def shop(rt: Runtime, tmp_path: Path, sink):  # type: ignore[no-untyped-def]
    rt.secrets.set("SINK_TOKEN", "tok-sekrit-123")
    f = tmp_path / "shop.yaml"
    f.write_text(RULES.replace("SINK_URL", sink.url))
    apply_paths(rt.catalog, [f])
    return sink


def send(client, body: dict) -> str:  # type: ignore[no-untyped-def]
    r = client.post("/hooks/shop", json=body)
    assert r.status_code == 202, r.get_data(as_text=True)
    return str(r.get_json()["event_id"])


# -- access -----------------------------------------------------------------------------
@pytest.mark.parametrize("url", PAGES)
def test_every_page_needs_a_login(client, user, url):  # type: ignore[no-untyped-def]
    r = client.get(url)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_when_logged_in(ui, url):  # type: ignore[no-untyped-def]
    r = ui.get(url)
    assert r.status_code == (404 if "nope" in url else 200)
    assert r.content_type.startswith("text/html")
    page = r.get_data(as_text=True)
    if url != "/dashboard/live":
        assert '<meta name="csrf-token"' in page
        assert 'action="/logout"' in page


def test_login_page_explains_how_to_create_the_first_user(client, rt):  # type: ignore[no-untyped-def]
    page = text_of(client.get("/login"))
    assert "hookwise user create" in page
    assert "/setup?token=" in page
    assert '<label for="email">Email</label>' in page
    assert '<label for="password">Password</label>' in page


def test_wrong_password_is_refused_with_a_message(client, user):  # type: ignore[no-untyped-def]
    r = post_form(client, "/login", {"email": USER_EMAIL, "password": "nope nope nope"})
    assert r.status_code == 401
    assert "Wrong email or password." in text_of(r)
    assert f'value="{USER_EMAIL}"' in r.get_data(as_text=True)


def test_login_keeps_the_page_asked_for(client, user):  # type: ignore[no-untyped-def]
    r = client.get("/events?status=failed")
    assert r.status_code == 302
    login_url = r.headers["Location"]
    token = csrf_of(client.get(login_url).get_data(as_text=True))
    r = client.post(login_url, data={"email": USER_EMAIL, "password": USER_PASSWORD,
                                     "csrf_token": token})
    assert r.headers["Location"] == "/events?status=failed"


def test_logout_is_a_post_with_csrf(ui):  # type: ignore[no-untyped-def]
    r = post_form(ui, "/logout", {}, page="/")
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert ui.get("/").status_code == 302


def test_setup_link_creates_the_first_user_once(client, rt):  # type: ignore[no-untyped-def]
    token = setup_token(rt.settings.data_dir, create=True)
    page = client.get(f"/setup?token={token}")
    assert page.status_code == 200
    assert "Confirm password" in text_of(page)
    form = {"token": token, "email": "first@example.test", "password": "long enough pw",
            "csrf_token": csrf_of(page.get_data(as_text=True))}
    r = client.post("/setup", data={**form, "confirm": "different"})
    assert r.status_code == 400 and "The two passwords differ." in text_of(r)
    r = client.post("/setup", data={**form, "confirm": "long enough pw"})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    again = client.get(f"/setup?token={token}")
    assert again.status_code == 404
    assert "This setup link does not work" in text_of(again)


def test_setup_with_a_wrong_token_says_so(client, rt):  # type: ignore[no-untyped-def]
    setup_token(rt.settings.data_dir, create=True)
    r = client.get("/setup?token=wrong")
    assert r.status_code == 404
    assert "This setup link does not work" in text_of(r)


def test_post_without_csrf_token_changes_nothing(ui, rt):  # type: ignore[no-untyped-def]
    r = ui.post("/secrets", data={"name": "X_TOKEN", "value": "v"})
    assert r.status_code == 302
    assert "X_TOKEN" not in rt.secrets.names()
    follow = ui.get(r.headers["Location"])
    assert "Your form expired" in text_of(follow)


# -- dashboard ---------------------------------------------------------------------------
def test_dashboard_draws_charts_and_counts(ui, shop, work):  # type: ignore[no-untyped-def]
    shop.respond("/orders", Reply(status=422, json={"error": "nope"}))
    send(ui, {"id": "o1", "type": "order.paid", "total": 150})
    send(ui, {"id": "o2", "type": "order.paid", "total": 50})
    work()
    page = text_of(ui.get("/"))
    assert page.count("<svg class=\"chart") == 2
    assert 'aria-label="Events received: 2 events in the last 24 hours' in page
    assert 'aria-label="Failed executions: 1 failed executions' in page
    assert "processed <strong>2</strong>" in page
    assert "paid-order" in page and "422" in page  # recent failures, with the reason
    assert 'hx-get="/dashboard/live"' in page and 'hx-trigger="every 10s"' in page
    live = text_of(ui.get("/dashboard/live", headers={"HX-Request": "true"}))
    assert "<svg" in live and "<html" not in live


def test_dashboard_shows_a_paused_destination_and_not_a_healthy_one(ui, rt):  # type: ignore[no-untyped-def]
    from engine.outbound.guard import DestinationGuard

    guard = DestinationGuard(rt.redis)
    for _ in range(3):
        guard.failed("https://down.example:443", "could not reach down.example", threshold=3)
    guard.failed("https://flaky.example:443", "timed out", threshold=3)  # failing, not paused
    page = text_of(ui.get("/"))
    assert "Destinations that need attention" in page
    assert "https://down.example:443" in page and 'badge-paused">paused' in page
    assert "could not reach down.example" in page
    assert 'badge-failing">failing' in page
    guard.resume("https://down.example:443")
    guard.resume("https://flaky.example:443")
    assert "Destinations that need attention" not in text_of(ui.get("/"))


def test_dashboard_says_when_redis_is_unreachable(rt, user):  # type: ignore[no-untyped-def]
    """The app on a Runtime of the same database whose Redis is a closed port."""
    dead = Runtime(rt.settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    try:
        app = create_app(runtime=dead)
        app.config["TESTING"] = True
        page = text_of(log_in(app.test_client()).get("/"))
    finally:
        dead.close()
    assert "Redis unreachable" in page


# -- sources -----------------------------------------------------------------------------
def test_create_edit_and_delete_a_source_through_the_form(ui, rt):  # type: ignore[no-untyped-def]
    r = post_form(ui, "/sources/new", {
        "slug": "stripe", "description": "Live", "verify.scheme": "stripe",
        "verify.secret": "STRIPE_WHSEC", "dedup.kind": "header", "dedup.value": "Stripe-Id",
        "respond.mode": "immediate"})
    assert r.status_code == 302, text_of(r)
    spec = rt.catalog.get_source("stripe").spec
    assert spec["verify"] == {"scheme": "stripe", "secret": "STRIPE_WHSEC"}
    assert spec["dedup"] == {"header": "Stripe-Id"}
    listing = text_of(ui.get("/sources"))
    assert "Source “stripe” created." in listing
    assert "http://localhost/hooks/stripe" in listing and "data-copy" in listing

    form = text_of(ui.get("/sources/stripe"))
    assert 'value="STRIPE_WHSEC"' in form and 'value="Stripe-Id"' in form
    r = post_form(ui, "/sources/stripe", {
        "slug": "renamed", "verify.scheme": "none", "respond.mode": "reply",
        "respond.timeout_ms": "4000"})
    assert r.status_code == 302
    spec = rt.catalog.get_source("stripe").spec
    assert spec["respond"] == {"mode": "reply", "timeout_ms": 4000}
    assert "dedup" not in spec and rt.catalog.get_source("renamed") is None

    r = post_form(ui, "/sources/stripe/delete", {}, page="/sources/stripe")
    assert r.status_code == 302 and rt.catalog.get_source("stripe") is None
    assert "Source “stripe” deleted." in text_of(ui.get("/sources"))


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"slug": "Bad Slug"}, "slug", "must be 1-64 lowercase letters"),
    ({"slug": "s1", "verify.scheme": "stripe"}, "verify-secret", "needs `secret`"),
    ({"slug": "s1", "verify.scheme": "hmac", "verify.secret": "K"}, "verify-secret",
     "needs `header`"),
    ({"slug": "s1", "dedup.kind": "path"}, "dedup", "exactly one of"),
    ({"slug": "s1", "respond.timeout_ms": "0"}, "respond-timeout_ms", "greater than or equal"),
    ({"slug": "s1", "respond.timeout_ms": "soon"}, "respond-timeout_ms", "valid integer"),
])
def test_source_errors_are_shown_beside_their_field(ui, rt, data, field, message):  # type: ignore[no-untyped-def]
    r = post_form(ui, "/sources/new", {"verify.scheme": "none", "respond.mode": "immediate",
                                        **data})
    assert r.status_code == 400
    page = text_of(r)
    found = re.search(rf'<small class="field-error" id="{field}-error">([^<]*)</small>', page)
    assert found, f"no error beside {field}"
    assert message in found.group(1)
    assert f'aria-describedby="{field}-error"' in page
    assert rt.catalog.list_sources() == []


def test_a_taken_slug_is_refused(ui, shop):  # type: ignore[no-untyped-def]
    r = post_form(ui, "/sources/new", {"slug": "shop", "verify.scheme": "none"})
    assert r.status_code == 400
    assert "a source “shop” exists already" in text_of(r)


# -- rules -------------------------------------------------------------------------------
def test_rules_list_and_htmx_toggle(ui, rt, shop, work):  # type: ignore[no-untyped-def]
    shop.respond("/orders", Reply(json={"ok": True}))
    send(ui, {"id": "o1", "type": "order.paid", "total": 150})
    work()
    page = text_of(ui.get("/rules"))
    assert 'href="/rules/new"' in page and 'href="/rules/paid-order/edit"' in page
    row = re.search(r'<tr id="rule-paid-order".*?</tr>', page, re.S).group(0)
    assert 'aria-checked="true"' in row and "v1" in row and "just now" in row
    assert page.index("rule-paid-order") < page.index("rule-refunds")  # priority first

    token = csrf_of(page)
    r = ui.post("/rules/paid-order/toggle",
                headers={"HX-Request": "true", "X-CSRFToken": token})
    assert r.status_code == 200
    fragment = text_of(r)
    assert fragment.lstrip().startswith("<tr id=\"rule-paid-order\"")
    assert 'aria-checked="false"' in fragment and "v1" in fragment  # no new version
    rule = rt.catalog.get_rule("paid-order")
    assert rule.enabled is False and rule.version == 1

    r = ui.post("/rules/paid-order/toggle", data={"csrf_token": token})  # no JavaScript
    assert r.status_code == 302 and rt.catalog.get_rule("paid-order").enabled is True
    assert ui.post("/rules/paid-order/toggle", headers={"HX-Request": "true"}).status_code \
        == 302  # no CSRF header: refused
    assert rt.catalog.get_rule("paid-order").enabled is True


# -- events ------------------------------------------------------------------------------
def test_events_list_filters_and_pages(ui, shop):  # type: ignore[no-untyped-def]
    ids = [send(ui, {"id": f"o{i}", "type": "order.paid", "total": i}) for i in range(30)]
    page = text_of(ui.get("/events"))
    assert ids[-1] in page and ids[0] not in page  # newest first, 25 a page
    assert "1–25 of 30" in page and "Older →" in page
    older = text_of(ui.get("/events?offset=25", headers={"HX-Request": "true",
                                                            "HX-Target": "event-list"}))
    assert "<html" not in older and ids[0] in older and "26–30 of 30" in older
    assert "← Newer" in older

    by_path = text_of(ui.get("/events?path=$.body.total&value=7"))
    assert ids[7] in by_path and ids[8] not in by_path and "1–1 of 1" in by_path
    by_text = text_of(ui.get("/events?q=%22o12%22"))
    assert ids[12] in by_text and ids[13] not in by_text
    assert "No events match these filters" in text_of(ui.get("/events?status=failed"))
    assert "No events match" in text_of(ui.get("/events?source=other&since=1h"))
    bad = ui.get("/events?path=$.body[")
    assert bad.status_code == 200
    assert re.search(r'<small class="field-error" id="path-error">', bad.get_data(as_text=True))


def test_event_page_shows_trace_steps_and_replays(ui, rt, shop, work):  # type: ignore[no-untyped-def]
    shop.respond("/orders", Reply(json={"accepted": True}))
    event_id = send(ui, {"id": "o1", "type": "order.paid", "total": 150})
    work()
    r = ui.get(f"/events/{event_id}")
    assert r.status_code == 200
    page = text_of(r)
    assert '"type": "order.paid"' in page  # pretty payload
    assert "content-type" in page  # headers
    assert "paid-order" in page and "matched" in page
    assert "refunds" in page and "did not match" in page
    assert "failed at `$.body.type eq order.refunded`: saw 'order.paid'" in page
    assert page.count('class="verdict pass"') >= 3  # all + two conditions
    assert "succeeded" in page and "1 attempt" in page
    assert f"POST {shop.url}/orders" in page and "→ 200" in page
    assert "tok-sekrit-123" not in page  # the engine redacted it
    assert '"accepted": true' in page  # the response

    r = post_form(ui, f"/events/{event_id}/replay", {}, page=f"/events/{event_id}")
    assert r.status_code == 302
    assert "Replay queued as round 1" in text_of(ui.get(r.headers["Location"]))
    work()
    page = text_of(ui.get(f"/events/{event_id}"))
    assert "Replay 1" in page and "Earlier rounds" in page and "First match" in page
    assert len(get_event(rt.db, event_id)["executions"]) == 2


def test_failed_execution_can_be_retried(ui, rt, shop, work):  # type: ignore[no-untyped-def]
    shop.respond("/orders", Reply(status=400, json={"error": "bad order"}))
    event_id = send(ui, {"id": "o1", "type": "order.paid", "total": 150})
    work()
    page = text_of(ui.get(f"/events/{event_id}"))
    assert "Retry from failed step" in page and "400" in page
    [ex] = get_event(rt.db, event_id)["executions"]
    shop.respond("/orders", Reply(json={"ok": True}))
    r = post_form(ui, f"/executions/{ex['id']}/retry", {}, page=f"/events/{event_id}")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"#{ex['id']}")
    assert "Retrying “paid-order” from its failed step" in text_of(ui.get(r.headers["Location"]))
    work()
    [ex] = get_event(rt.db, event_id)["executions"]
    assert ex["status"] == "succeeded"
    r = post_form(ui, f"/executions/{ex['id']}/retry", {}, page=f"/events/{event_id}")
    assert "Not retried" in text_of(ui.get(r.headers["Location"]))


def test_replaying_an_unknown_event_is_404(ui):  # type: ignore[no-untyped-def]
    r = post_form(ui, "/events/evt_nope/replay", {}, page="/events")
    assert r.status_code == 404
    assert "There is no event evt_nope." in text_of(r)


# -- secrets -----------------------------------------------------------------------------
def test_secrets_are_set_listed_and_never_shown(ui, rt):  # type: ignore[no-untyped-def]
    r = post_form(ui, "/secrets", {"name": "CHAT_TOKEN", "value": "xoxb-very-secret"})
    assert r.status_code == 302
    page = text_of(ui.get("/secrets"))
    assert "Secret CHAT_TOKEN stored." in page and "CHAT_TOKEN" in page
    assert "xoxb-very-secret" not in page
    assert 'type="password"' in page
    r = post_form(ui, "/secrets", {"name": "CHAT_TOKEN", "value": "new-value"})
    assert "Secret CHAT_TOKEN replaced." in text_of(ui.get("/secrets"))
    assert rt.secrets.get("CHAT_TOKEN") == "new-value"

    r = post_form(ui, "/secrets", {"name": "9 bad", "value": "x"})
    assert r.status_code == 400
    assert re.search(r'id="name-error">secret name', text_of(r))
    for blank in ("", "   "):
        r = post_form(ui, "/secrets", {"name": "EMPTY", "value": blank})
        assert r.status_code == 400 and 'id="value-error">Type the value' in text_of(r)
    assert rt.secrets.names() == ["CHAT_TOKEN"]

    r = post_form(ui, "/secrets/CHAT_TOKEN/delete", {}, page="/secrets")
    assert r.status_code == 302 and rt.secrets.names() == []


def test_tokens_are_created_once_listed_and_revoked(ui, client, rt):  # type: ignore[no-untyped-def]
    """Issue 12, item 13: the UI lists tokens (never the token), shows a new one once,
    and revokes one for the very next request."""
    r = post_form(ui, "/tokens", {"name": "deploy"})
    assert r.status_code == 201
    token = re.search(r'id="new-token-value">(hw_[^<]+)<', r.get_data(as_text=True)).group(1)
    assert rt.accounts.verify_token(token) is not None
    page = text_of(ui.get("/tokens"))
    assert "deploy" in page and token[:10] in page and token not in page
    assert "never" in page  # not used yet

    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/rules", headers=bearer).status_code == 200
    r = post_form(ui, "/tokens", {"name": "deploy"})
    assert r.status_code == 400 and "exists already" in text_of(r)
    r = post_form(ui, "/tokens", {"name": "  "})
    assert r.status_code == 400 and "Give the token a name" in text_of(r)

    r = post_form(ui, "/tokens/deploy/revoke", {}, page="/tokens")
    assert r.status_code == 302
    assert "Token deploy revoked" in text_of(ui.get("/tokens"))
    assert client.get("/api/v1/rules", headers=bearer).status_code == 401
    assert [t.name for t in rt.accounts.list_tokens()] == []
