"""Issue 14 in a real browser (Playwright driving Debian's Chromium) against the app on a
loopback port, a real RQ worker and a loopback HTTP receiver: pages that update
themselves, retry now, cancel, bulk retry with progress, the outcome badge and filter.

Set HOOKWISE_SCREENSHOTS=1 to (re)write ``docs/screenshots/event.png``,
``events-bulk-retry.png`` and ``phone.png``."""

from __future__ import annotations

import os
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
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot(page, name: str, *, full_page: bool = True) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get("HOOKWISE_SCREENSHOTS"):
        page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)

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
    page.wait_for_load_state("load")  # the retry's own page load ends before we count
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
    screenshot(page, "event.png")

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
    screenshot(page, "events-bulk-retry.png")
    work(until=lambda: all(status_of(rt, e) == "succeeded" for e in failed))
    expect(box).to_contain_text("Bulk retry finished")
    expect(box).to_contain_text("3 of 3 finished · 3 succeeded")
    expect(box.locator("progress")).to_have_attribute("value", "3")
    expect(rows).to_have_count(0)  # the failed filter is empty now: the list followed


# -- items 10-12 --------------------------------------------------------------------------
NO_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


def test_a_huge_value_wraps_with_show_all(logged_in, live_server, rt, sink, work,  # type: ignore[no-untyped-def]
                                          tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(f"""
sources: [{{slug: s}}]
rules:
  - name: notes
    source: s
    when: {{path: $.body.note, op: eq, value: short}}
    actions: [{{id: out, type: webhook, url: "{sink.url}/x"}}]
""")
    apply_paths(rt.catalog, [f])
    huge = "w" * 300_000  # one 300 KB word: nowhere to break it but anywhere
    r = httpx.post(f"{live_server}/hooks/s", json={"note": huge},
                   headers={"X-Long": "h" * 5000})
    event_id = r.json()["event_id"]
    work()
    page = logged_in
    page.goto(f"{live_server}/events/{event_id}")
    page.locator("details.trace summary").first.click()  # open the unmatched trace
    assert page.evaluate(NO_SCROLL), page.evaluate("document.documentElement.scrollWidth")
    header = page.locator("table.kv tr", has_text="x-long").locator(".clip")
    expect(header.get_by_text("show all (5,000 characters)")).to_be_visible()
    expect(header.locator(".clip-full")).to_be_hidden()
    header.get_by_text("show all").click()
    expect(header.locator(".clip-full")).to_be_visible()
    assert page.evaluate(NO_SCROLL)

    # the builder with that event as its sample
    page.goto(f"{live_server}/rules/notes/edit")
    page.locator("#rb-recent").select_option(event_id)
    expect(page.locator("#rb-sample-body")).to_have_value(re.compile("wwww"))
    page.wait_for_timeout(500)
    assert page.evaluate(NO_SCROLL), page.evaluate("document.documentElement.scrollWidth")


def test_a_phone_wide_screen_scrolls_only_down(logged_in, live_server, rules, sink, work):  # type: ignore[no-untyped-def]
    sink.respond("/bad", Reply(status=400, json={"error": "x" * 400}))
    event_id = send(live_server, "bad")
    work()
    page = logged_in
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ["/", "/events", "/rules", "/sources", f"/events/{event_id}", "/rules/new",
                 "/secrets", "/tokens", "/no/such/page"]:
        page.goto(f"{live_server}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    page.goto(f"{live_server}/events/{event_id}")
    screenshot(page, "phone.png", full_page=False)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Events")).to_be_in_viewport()
    expect(nav.get_by_role("link", name="Tokens")).to_be_in_viewport()


def test_help_text_sits_below_a_focused_input(logged_in, live_server):  # type: ignore[no-untyped-def]
    page = logged_in
    page.goto(f"{live_server}/sources/new")
    smalls = page.locator("input + small, select + small")
    assert smalls.count() > 0
    for i in range(smalls.count()):
        small = smalls.nth(i)
        field = small.locator("xpath=preceding-sibling::*[1]")
        if not field.is_visible():
            continue
        field.focus()
        ring = page.evaluate("(e) => parseFloat(getComputedStyle(e).boxShadow.split(' ')"
                             ".slice(-1)[0]) || 3", field.element_handle())
        assert small.bounding_box()["y"] >= (field.bounding_box()["y"]  # type: ignore[index]
                                             + field.bounding_box()["height"] + ring), i  # type: ignore[index]


def test_the_styled_404_page_in_the_browser(logged_in, live_server):  # type: ignore[no-untyped-def]
    page = logged_in
    resp = page.goto(f"{live_server}/no/such/page")
    assert resp is not None and resp.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.get_by_role("link", name="Back to the dashboard").click()
    expect(page).to_have_url(f"{live_server}/")


def test_builder_new_rule_source_ids_and_unsaved_changes(logged_in, live_server, rt,  # type: ignore[no-untyped-def]
                                                         sink, work, tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(f"""
sources: [{{slug: alpha}}, {{slug: beta}}, {{slug: gamma}}]
rules:
  - name: first
    source: beta
    actions: [{{id: out, type: webhook, url: "{sink.url}/x"}}]
""")
    apply_paths(rt.catalog, [f])
    ids = [httpx.post(f"{live_server}/hooks/beta", json={"n": n}).json()["event_id"]
           for n in range(3)]
    work()
    page = logged_in
    page.goto(f"{live_server}/rules/new")
    # several sources: not "* — every source", but the one that received the newest event
    expect(page.locator("#rb-source")).to_have_value("beta")
    # recent events: told apart by their tails (their heads are the same millisecond-ish)
    options = page.locator("#rb-recent option")
    expect(options).to_have_count(4)
    texts = [options.nth(i).inner_text() for i in range(1, 4)]
    assert len({t.rsplit("…", 1)[1] for t in texts}) == 3
    assert all(any(t.endswith(i[-8:]) for t in texts) for i in ids)

    # unsaved changes: leaving asks; an untouched page leaves without asking
    page.get_by_label("Name", exact=True).fill("half-done")
    asked: list[str] = []

    def answer(d):  # type: ignore[no-untyped-def]
        asked.append(d.type)
        d.dismiss() if len(asked) == 1 else d.accept()

    page.on("dialog", answer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    page.wait_for_timeout(500)
    assert asked == ["beforeunload"]
    expect(page).to_have_url(re.compile(r"/rules/new"))
    page.goto(f"{live_server}/rules/first/edit")  # leaving again: accepted this time
    assert asked == ["beforeunload", "beforeunload"]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    expect(page).to_have_url(f"{live_server}/events")
    assert len(asked) == 2  # nothing changed on the saved rule: no question
