"""The HTML UI in a real browser (Playwright driving Debian's Chromium) against the app
on a loopback port, with a real RQ worker carrying events out between steps."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from engine.store.queries import get_event
from engine.store.rule_files import apply_paths
from tests.servers import Reply

pytestmark = pytest.mark.slow

RULE = """
rules:
  - name: paid-order
    source: shop
    when:
      any:
        - {path: $.body.type, op: eq, value: order.paid}
        - {path: $.body.total, op: gt, value: 1000}
    actions:
      - id: notify
        type: webhook
        url: "SINK/tickets"
        json: {order: "{{ body.id }}"}
      - id: mail
        type: email
        to: ops@example.test
        subject: "Order {{ body.id }}"
        text: "Ticket {{ steps.notify.json.ticket }} opened"
  - name: refunds
    source: shop
    when: {path: $.body.type, op: eq, value: order.refunded}
    actions:
      - {id: wait, type: delay, seconds: 0}
"""


def test_a_logged_out_visit_lands_on_the_login_form(page, live_server, user):  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/events?status=failed")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/events?status=failed")


def test_source_form_event_page_and_replay(logged_in, live_server, rt, sink, smtp, work,  # type: ignore[no-untyped-def]
                                           tmp_path: Path):
    page = logged_in
    # a source, through the form
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Sources").click()
    page.get_by_role("link", name="New source").click()
    page.get_by_label("Slug").fill("shop")
    page.get_by_label("Description").fill("Storefront orders")
    page.get_by_label("Verify scheme").select_option("none")
    page.get_by_role("button", name="Create source").click()
    expect(page.get_by_role("alert")).to_contain_text("Source “shop” created.")
    expect(page.locator("#url-shop")).to_have_text(f"{live_server}/hooks/shop")

    # a rule with a webhook then an email that uses the webhook's response
    sink.respond("/tickets", Reply(json={"ticket": "T-42"}))
    f = tmp_path / "rule.yaml"
    f.write_text(RULE.replace("SINK", sink.url))
    apply_paths(rt.catalog, [f])

    r = httpx.post(f"{live_server}/hooks/shop", json={"id": "o-77", "type": "order.paid",
                                                       "total": 120})
    assert r.status_code == 202
    event_id = r.json()["event_id"]
    work()
    [mail] = smtp.wait_for(1)
    assert "Ticket T-42 opened" in mail.get_content()

    # find it in the events list, open it
    nav.get_by_role("link", name="Events").click()
    page.get_by_label("Source").select_option("shop")  # htmx swaps the list
    row = page.locator("table.events tbody tr", has_text=event_id)
    expect(row).to_have_count(1)
    expect(row.locator(".badge").first).to_have_text("succeeded")  # the worst outcome
    row.get_by_role("link", name=event_id).click()
    expect(page).to_have_url(f"{live_server}/events/{event_id}")

    # match trace: the rule that matched in green, the other in red with its reason
    expect(page.locator("details.trace.matched")).to_contain_text("paid-order")
    expect(page.locator("details.trace.unmatched")).to_contain_text(
        "failed at `$.body.type eq order.refunded`: saw 'order.paid'")
    expect(page.locator("details.trace.matched .verdict.pass").first).to_be_visible()
    # both steps succeeded, with the rendered request and the response
    steps = page.locator("li.step")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("notify")
    expect(steps.nth(0).locator(".badge")).to_have_text("succeeded")
    expect(steps.nth(1)).to_contain_text("mail")
    expect(steps.nth(1).locator(".badge")).to_have_text("succeeded")
    steps.nth(0).get_by_text("Response").click()
    expect(steps.nth(0).locator("pre.json").last).to_contain_text('"ticket": "T-42"')

    # replay: a second round with its own execution
    page.get_by_role("button", name="Replay event").click()
    expect(page.get_by_role("alert")).to_contain_text("Replay queued as round 1")
    work(until=lambda: len(get_event(rt.db, event_id)["executions"]) == 2
         and get_event(rt.db, event_id)["event"]["status"] == "processed")
    page.reload()
    expect(page.get_by_role("heading", name=re.compile("Replay 1"))).to_be_visible()
    expect(page.locator("section.round article.execution .badge").first).to_have_text(
        "succeeded")
    page.get_by_text("First match").click()
    expect(page.locator("article.execution")).to_have_count(2)


def test_rule_toggle_with_the_keyboard(logged_in, live_server, rt, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "rule.yaml"
    f.write_text("sources: [{slug: shop}]\n" + RULE.replace("SINK", "http://127.0.0.1:9"))
    apply_paths(rt.catalog, [f])
    page = logged_in
    page.goto(f"{live_server}/rules")
    switch = page.get_by_role("switch", name="paid-order enabled")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.focus()
    page.keyboard.press("Space")  # htmx posts with the X-CSRFToken header
    expect(page.get_by_role("switch", name="paid-order enabled")).to_have_attribute(
        "aria-checked", "false")
    assert rt.catalog.get_rule("paid-order").enabled is False
    # a switch is a history entry, not a new version of the rule
    expect(page.locator("#rule-paid-order")).to_contain_text("v1")
