"""The rule builder's Test on sample shows a flow block's tree (issue 15, item 8's
read-only part): which case of a branch would run, and each foreach item's steps — in
Chromium, on a rule with a branch holding a foreach."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from rules.schema import parse_rule, parse_source

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

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
    result.locator(".rb-banner.rb-pass").wait_for(timeout=30_000)  # a loaded CI machine
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


def _in(page, loc: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#rb-actions [data-loc="{loc}"]')


def test_build_a_branch_holding_a_foreach_in_the_form(  # type: ignore[no-untyped-def]
        logged_in, live_server, rt, sink, work) -> None:
    """Issue 15, item 8: a branch and a for-each built in place — a case with its
    condition tree, a for-each whose items come from clicking a list's [*] in the sample,
    nested steps, reordering, collapse — tested on the sample, saved, read back into the
    form, and run for real."""
    page = logged_in
    rt.catalog.save([parse_source({"slug": "shop"})], [])
    page.goto(f"{live_server}/rules/new?source=shop")
    page.wait_for_function("() => window.hookwiseBuilder !== undefined")
    if page.evaluate("() => window.hookwiseBuilder.toSpec().actions.length"):
        page.get_by_role("button", name="Remove step 1").click()
    page.get_by_label("Name", exact=True).fill("ship-lines")
    page.get_by_label("Body (JSON or text)").fill(json.dumps(
        {"status": "paid", "items": [{"sku": "A-1"}, {"sku": "B-2"}]}))

    # a branch: it starts with one case and one empty condition
    page.locator("#rb-new-step").select_option("branch")
    page.locator("#rb-add-step").click()
    case = _in(page, "actions[0].cases[0]")
    case.get_by_label("name", exact=True).fill("paid")
    case.get_by_label("Path", exact=True).fill("$.body.status")
    case.get_by_label("Operator").select_option("eq")
    case.get_by_label("Value", exact=True).fill("paid")

    # inside the case: a for-each over the sample's items, picked from the tree
    case.locator(".rb-add-nested select").select_option("foreach")
    case.get_by_role("button", name=re.compile(r"^Add a step to case 1 ")).click()
    each = _in(page, "actions[0].cases[0].steps[0]")
    assert each.locator(".rb-step-badge").first.inner_text() == "1.1.1"
    each.get_by_label("Items").click()
    page.locator('#rb-tree button.rb-each[data-path="$.body.items[*]"]').click()
    assert each.get_by_label("Items").input_value() == "$.body.items[*]"
    each.get_by_label("Each item is called").fill("line")

    # the for-each's steps: a webhook per item (the item is offered as a chip), then a set
    each.locator(".rb-add-nested select").last.select_option("webhook")
    each.get_by_role("button", name=re.compile(r"^Add a step to for each item, run")).click()
    ship = _in(page, "actions[0].cases[0].steps[0].steps[0]")
    ship.locator(".rb-step-id input").fill("ship")
    ship.get_by_label("URL").fill(f"{sink.url}/ship/")
    ship.get_by_label("URL").press("End")
    ship.get_by_role("button", name="Insert line", exact=True).click()
    assert ship.get_by_label("URL").input_value() == f"{sink.url}/ship/{{{{ line }}}}"
    ship.get_by_label("URL").fill(f"{sink.url}/ship/{{{{ line.sku }}}}")
    ship.get_by_label("JSON to send").fill(
        '{"n": "{{ loop.index }}", "order": "{{ body.status }}"}')
    each.locator(".rb-add-nested select").last.select_option("set")
    each.get_by_role("button", name=re.compile(r"^Add a step to for each item, run")).click()
    # the set was added second; move it up, then back down, with its arrows
    page.get_by_role("button", name="Move step 1.1.1.2 up", exact=True).click()
    assert page.evaluate("() => window.hookwiseBuilder.toSpec().actions[0].cases[0].steps[0].steps"
                         ".map(s => s.type)") == ["set", "webhook"]
    page.get_by_role("button", name="Move step 1.1.1.1 down", exact=True).click()
    page.get_by_role("button", name="Remove step 1.1.1.2", exact=True).click()

    # else: a set step
    branch = _in(page, "actions[0]")
    branch.locator(":scope > .rb-step-body .rb-add-nested select").last.select_option("set")
    page.get_by_role("button", name=re.compile(r"^Add a step to else")).click()
    hold = _in(page, "actions[0].else[0]")
    hold.locator(".rb-kv-row input").nth(0).fill("why")
    hold.locator(".rb-kv-row input").nth(1).fill("not paid")

    # collapse the branch: its head says what it holds; expand it again
    page.get_by_role("button", name="Collapse step 1", exact=True).click()
    assert "1 case(s) + else" in branch.locator(".rb-gist").inner_text()
    assert not branch.locator(":scope > .rb-step-body").is_visible()
    page.get_by_role("button", name="Expand step 1", exact=True).click()
    assert branch.locator(":scope > .rb-step-body").is_visible()

    # Test on sample shows the tree
    page.get_by_role("button", name="Test on sample").click()
    result = page.locator("#rb-result")
    result.locator(".rb-banner.rb-pass").wait_for(timeout=30_000)  # a loaded CI machine
    assert "case paid runs" in result.locator(".rb-case").inner_text()
    rendered = result.locator(".rb-item .rb-rendered")
    assert rendered.count() == 2
    assert f"{sink.url}/ship/A-1" in rendered.nth(0).inner_text()
    assert f"{sink.url}/ship/B-2" in rendered.nth(1).inner_text()

    if os.environ.get("HOOKWISE_SCREENSHOTS"):
        shot = ROOT / "docs/screenshots/rule-builder-blocks.png"
        page.locator("#builder").screenshot(path=str(shot))

    # Save: the stored rule is the tree built
    page.get_by_role("button", name="Save rule").click()
    page.get_by_text("Created rule ship-lines").wait_for()
    row = rt.catalog.get_rule("ship-lines")
    assert row is not None
    [route] = row.spec["actions"]
    assert route["type"] == "branch" and route["id"] == "route"
    [paid] = route["cases"]
    assert paid["name"] == "paid"
    assert paid["when"] == {"path": "$.body.status", "op": "eq", "value": "paid"}
    [foreach] = paid["steps"]
    assert foreach["type"] == "foreach" and foreach["as"] == "line"
    assert foreach["items"] == "$.body.items[*]"
    assert [s["id"] for s in foreach["steps"]] == ["ship"]
    assert foreach["steps"][0]["url"] == f"{sink.url}/ship/{{{{ line.sku }}}}"
    assert route["else"] == [{"id": "vars", "type": "set", "values": {"why": "not paid"}}]

    # reopened, the form holds the same tree (and the YAML view shows it)
    page.goto(f"{live_server}/rules/ship-lines/edit")
    page.wait_for_function("() => window.hookwiseBuilder !== undefined")
    nested = _in(page, "actions[0].cases[0].steps[0].steps[0]")
    assert nested.locator(".rb-step-id input").input_value() == "ship"
    case_path = _in(page, "actions[0].cases[0].when").locator(".rb-cond-path input")
    assert case_path.input_value() == "$.body.status"
    spec = page.evaluate("() => window.hookwiseBuilder.toSpec()")
    # (the form writes defaults out, e.g. method: POST: compare what the rules mean)
    as_saved = parse_rule(row.spec).actions
    assert parse_rule({**row.spec, "actions": spec["actions"]}).actions == as_saved
    # a bad nested field is refused, and the message sits in that step
    nested.get_by_label("URL").fill("ship.example/{{ line.sku }}")
    page.get_by_role("button", name="Save rule").click()
    nested.locator(".rb-error-msg").first.wait_for()
    assert "not a web address" in nested.locator(".rb-error-msg").first.inner_text()
    assert rt.catalog.get_rule("ship-lines").spec["actions"] == row.spec["actions"]
    nested.get_by_label("URL").fill(f"{sink.url}/ship/{{{{ line.sku }}}}")
    page.get_by_role("tab", name="YAML").click()
    assert "foreach" in page.locator("#rb-yaml-text").input_value()

    # and it runs: one call per line item, in order, each with its own index
    order = {"status": "paid", "items": [{"sku": "A-1"}, {"sku": "B-2"}]}
    resp = httpx.post(f"{live_server}/hooks/shop", json=order)
    assert resp.status_code == 202, resp.text
    work(until=lambda: len(sink.requests) >= 2)
    reqs = sink.wait_for(2)
    assert [r.path for r in reqs] == ["/ship/A-1", "/ship/B-2"]
    assert [r.json() for r in reqs] == [{"n": 0, "order": "paid"}, {"n": 1, "order": "paid"}]


def test_build_an_emit_step_and_a_set_step_in_the_form(  # type: ignore[no-untyped-def]
        logged_in, live_server, rt, sink, work) -> None:
    """The emit block in the form: its Source box offers this instance's sources, its
    body is JSON with templates; saved, a webhook raises the new event on that source,
    linked to its parent, and the rule there sees the values a set step computed."""
    from engine.store.models import Event

    page = logged_in
    rt.catalog.save([parse_source({"slug": "push"}), parse_source({"slug": "deploys"})], [])
    rt.catalog.save([], [parse_rule({
        "name": "deploy", "source": "deploys",
        "actions": [{"id": "go", "type": "webhook", "url": f"{sink.url}/deploy",
                     "json": {"repo": "{{ body.repo }}", "parent": "{{ event.parent_id }}"}}]})])
    page.goto(f"{live_server}/rules/new?source=push")
    page.wait_for_function("() => window.hookwiseBuilder !== undefined")
    if page.evaluate("() => window.hookwiseBuilder.toSpec().actions.length"):
        page.get_by_role("button", name="Remove step 1").click()
    page.get_by_label("Name", exact=True).fill("on-push")

    page.locator("#rb-new-step").select_option("set")
    page.locator("#rb-add-step").click()
    vars_ = _in(page, "actions[0]")
    vars_.locator(".rb-kv-row input").nth(0).fill("repo")
    vars_.locator(".rb-kv-row input").nth(1).fill("{{ body.repository | upper }}")

    page.locator("#rb-new-step").select_option("emit")
    page.locator("#rb-add-step").click()
    emit = _in(page, "actions[1]")
    offered = page.locator("#rb-sources option").evaluate_all("os => os.map(o => o.value)")
    assert {"push", "deploys"} <= set(offered)
    assert emit.get_by_label("Source", exact=True).get_attribute("list") == "rb-sources"
    emit.get_by_label("Source", exact=True).fill("deploys")
    # the set step's value is offered as a chip to the step after it
    assert emit.get_by_role("button", name="Insert steps.vars.repo", exact=True).count() == 1
    emit.get_by_label("JSON to send").fill('{"repo": "{{ steps.vars.repo }}"}')
    page.get_by_role("button", name="Save rule").click()
    page.get_by_text("Created rule on-push").wait_for()
    row = rt.catalog.get_rule("on-push")
    assert row is not None
    assert [a["type"] for a in row.spec["actions"]] == ["set", "emit"]
    assert row.spec["actions"][1]["source"] == "deploys"

    resp = httpx.post(f"{live_server}/hooks/push", json={"repository": "hookwise"})
    assert resp.status_code == 202, resp.text
    parent = resp.json()["event_id"]
    work(until=lambda: len(sink.requests) >= 1)
    [req] = sink.wait_for(1)
    assert req.json() == {"repo": "HOOKWISE", "parent": parent}
    with Session(rt.db) as s:
        child = s.exec(select(Event).where(Event.source == "deploys")).one()
    assert child.parent_id == parent
