"""The rule builder's Test on sample shows a flow block's tree (issue 15, item 8's
read-only part): which case of a branch would run, and each foreach item's steps — in
Chromium, on a rule with a branch holding a foreach."""

from __future__ import annotations

import json

import pytest

from rules.schema import parse_rule, parse_source

pytestmark = pytest.mark.slow

RULE = {
    "name": "fulfil",
    "source": "shop",
    "actions": [
        {"id": "route", "type": "branch", "cases": [
            {"name": "paid", "when": {"path": "$.body.status", "op": "eq", "value": "paid"},
             "steps": [{"id": "each", "type": "foreach", "items": "$.body.items[*]", "as": "line",
                        "steps": [{"id": "ship", "type": "webhook",
                                   "url": "https://ship.example/{{ line.sku }}",
                                   "json": {"n": "{{ loop.index }}"}}]}]}],
         "else": [{"id": "hold", "type": "set", "values": {"why": "not paid"}}]},
    ],
}


def test_test_on_sample_shows_the_case_and_each_item(logged_in, live_server, rt) -> None:  # type: ignore[no-untyped-def]
    page = logged_in
    rt.catalog.save([parse_source({"slug": "shop"})], [])
    rt.catalog.save([], [parse_rule(RULE)])
    page.goto(f"{live_server}/rules/fulfil/edit")
    page.get_by_label("Body (JSON or text)").fill(json.dumps(
        {"status": "paid", "items": [{"sku": "A-1"}, {"sku": "B-2"}]}))
    page.get_by_role("button", name="Test on sample").click()
    result = page.locator("#rb-result")
    result.locator(".rb-banner.rb-pass").wait_for()
    assert "case paid runs" in result.locator(".rb-case").inner_text()
    text = result.inner_text()
    assert "2 items" in text and "item 0" in text and "item 1" in text
    rendered = result.locator(".rb-item .rb-rendered")
    assert rendered.count() == 2
    assert "https://ship.example/A-1" in rendered.nth(0).inner_text()
    assert "https://ship.example/B-2" in rendered.nth(1).inner_text()

    # not paid: the else steps
    page.get_by_label("Body (JSON or text)").fill(json.dumps({"status": "new", "items": []}))
    page.get_by_role("button", name="Test on sample").click()
    page.locator("#rb-result .rb-case", has_text="else runs").wait_for()
    assert "hold" in result.inner_text()
