"""Issue 14 in a real browser (Playwright driving Debian's Chromium) against the app on a
loopback port, a real RQ worker and a loopback HTTP receiver: pages that update
themselves, retry now, cancel, bulk retry with progress, the outcome badge and filter."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from engine.store.queries import get_event
from engine.store.rule_files import apply_paths
from tests.servers import Reply

pytestmark = pytest.mark.slow

RULES = """
sources: [{slug: s}]
rules:
  - name: fwd
    source: s
    actions:
      - id: out
        type: webhook
        url: "SINK/{{ body.kind }}"
        json: {n: "{{ body.n }}"}
        retry: {max_attempts: 5, backoff: fixed, initial_s: 3600, max_s: 3600}
"""


@pytest.fixture
def rules(rt, sink, tmp_path: Path):  # type: ignore[no-untyped-def]
    f = tmp_path / "rules.yaml"
    f.write_text(RULES.replace("SINK", sink.url))
    apply_paths(rt.catalog, [f])


def send(live_server: str, kind: str, n: int = 0) -> str:
    r = httpx.post(f"{live_server}/hooks/s", json={"kind": kind, "n": n})
    assert r.status_code == 202, r.text
    return str(r.json()["event_id"])


def status_of(rt, event_id: str) -> str:  # type: ignore[no-untyped-def]
    [ex] = get_event(rt.db, event_id)["executions"]
    return str(ex["status"])


def test_the_event_page_shows_a_retry_finishing_without_a_reload(logged_in, live_server, rt,  # type: ignore[no-untyped-def]
                                                                 rules, sink, work):
    page = logged_in
    sink.respond("/bad", Reply(status=400, json={"error": "nope"}))
    event_id = send(live_server, "bad")
    work()
    page.goto(f"{live_server}/events/{event_id}")
    expect(page.locator("#event-outcome")).to_have_text("failed")
    expect(page.locator("article.execution .exec-head .badge")).to_have_text("failed")

    sink.respond("/bad", Reply(json={"ok": True}))
    page.get_by_role("button", name="Retry from failed step").click()
    expect(page.get_by_role("alert")).to_contain_text("Retrying “fwd” from its failed step")
    loads = []
    page.on("load", lambda: loads.append(1))
    work(until=lambda: status_of(rt, event_id) == "succeeded")
    # no reload: the page polls and swaps in the new state
    expect(page.locator("article.execution .exec-head .badge")).to_have_text("succeeded")
    expect(page.locator("#event-outcome")).to_have_text("succeeded")
    expect(page.locator("li.step .badge")).to_have_text("succeeded")
    assert loads == []


SHOW = """() => {
    Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'STATE'});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_the_events_list_shows_new_events_at_the_top_and_rests_while_hidden(  # type: ignore[no-untyped-def]
        logged_in, live_server, rules, sink, work):
    page = logged_in
    sink.respond("/ok", Reply(json={"ok": True}))
    first = send(live_server, "ok", 1)
    work()
    page.goto(f"{live_server}/events")
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".badge").first).to_have_text("succeeded")

    second = send(live_server, "ok", 2)
    expect(rows).to_have_count(2)  # polled in, no reload
    expect(rows.first).to_have_attribute("data-id", second)
    expect(rows.first).to_have_class(re.compile("row-new"))
    expect(rows.nth(1)).to_have_attribute("data-id", first)
    expect(rows.first.locator(".badge").first).to_have_text("pending")
    work()
    expect(rows.first.locator(".badge").first).to_have_text("succeeded")

    # a hidden tab does not poll; showing it again refreshes at once
    polls: list[str] = []
    page.on("request", lambda req: polls.append(req.url) if "/events" in req.url else None)
    page.evaluate(SHOW.replace("STATE", "hidden"))
    polls.clear()
    third = send(live_server, "ok", 3)
    time.sleep(4)  # more than the list's 3 s
    assert polls == []
    expect(rows).to_have_count(2)
    page.evaluate(SHOW.replace("STATE", "visible"))
    expect(rows).to_have_count(3, timeout=2000)
    expect(rows.first).to_have_attribute("data-id", third)


def test_retry_now_and_cancel_from_the_event_page(logged_in, live_server, rt, rules, sink,  # type: ignore[no-untyped-def]
                                                  work):
    page = logged_in
    sink.respond("/later", Reply(status=500))
    event_id = send(live_server, "later")
    work()
    page.goto(f"{live_server}/events/{event_id}")
    expect(page.locator("#event-outcome")).to_have_text("waiting")
    expect(page.locator("li.step")).to_contain_text(re.compile(r"next try in (\d+ min|1 h)"))

    sink.respond("/later", Reply(json={"ok": True}))
    page.get_by_role("button", name="Retry now").click()
    expect(page.get_by_role("alert")).to_contain_text("Step “out” of “fwd” runs now")
    work(until=lambda: status_of(rt, event_id) == "succeeded")
    expect(page.locator("#event-outcome")).to_have_text("succeeded")
    expect(page.get_by_role("button", name="Retry now")).to_have_count(0)
    assert len(sink.requests) == 2

    # cancel, with its confirmation
    sink.respond("/later", Reply(status=500))
    other = send(live_server, "later", 2)
    work()
    page.goto(f"{live_server}/events/{other}")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("alert")).to_contain_text("“fwd” cancelled")
    expect(page.locator("#event-outcome")).to_have_text("failed")
    expect(page.locator("article.execution")).to_contain_text(
        "step out: cancelled by ada@example.test")
    assert status_of(rt, other) == "failed"


def test_bulk_retry_from_the_filtered_list_shows_its_progress(logged_in, live_server, rt,  # type: ignore[no-untyped-def]
                                                              rules, sink, work):
    page = logged_in
    sink.respond("/bad", Reply(status=400))
    sink.respond("/ok", Reply(json={"ok": True}))
    failed = [send(live_server, "bad", n) for n in range(3)]
    ok = send(live_server, "ok")
    work()
    page.goto(f"{live_server}/events")
    page.get_by_label("Outcome").select_option("failed")  # htmx swaps the list
    expect(page).to_have_url(re.compile(r"outcome=failed"))
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator(f'tr[data-id="{ok}"]')).to_have_count(0)
    for row in rows.all():
        expect(row.locator(".badge").first).to_have_text("failed")

    sink.respond("/bad", Reply(json={"ok": True}))
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Retry failed executions").click()
    box = page.locator("#bulk-retry")
    expect(box).to_contain_text("Retrying 3 failed executions")
    expect(box.locator("progress")).to_have_attribute("max", "3")
    work(until=lambda: all(status_of(rt, e) == "succeeded" for e in failed))
    expect(box).to_contain_text("Bulk retry finished")
    expect(box).to_contain_text("3 of 3 finished · 3 succeeded")
    expect(box.locator("progress")).to_have_attribute("value", "3")
    expect(rows).to_have_count(0)  # the failed filter is empty now: the list followed
