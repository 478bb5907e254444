"""A rule's lifecycle in Chromium (issue 14): rename in the builder (one rule, one
delivery per event), delete a rule and a source with confirmations that say what goes,
the versions page (diff, restore), export and import with a preview.
Set HOOKWISE_SCREENSHOTS=1 to (re)write ``docs/screenshots/rule-versions.png`` and
``docs/screenshots/import-preview.png``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import expect

from engine.store.queries import get_event
from engine.store.rule_files import apply_paths, export

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get("HOOKWISE_SCREENSHOTS"):
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)

RULES = """
sources: [{slug: shop}]
rules:
  - name: ui-forward
    source: shop
    actions:
      - {id: out, type: webhook, url: "SINK/out", json: {n: "{{ body.n }}"}}
"""


@pytest.fixture
def forward(rt, sink, tmp_path: Path):  # type: ignore[no-untyped-def]
    f = tmp_path / "rules.yaml"
    f.write_text(RULES.replace("SINK", sink.url))
    apply_paths(rt.catalog, [f])


def post(live_server: str, n: int) -> str:
    r = httpx.post(f"{live_server}/hooks/shop", json={"n": n})
    assert r.status_code == 202
    return str(r.json()["event_id"])


def test_rename_in_the_builder_renames(logged_in, live_server, rt, sink, work, forward):  # type: ignore[no-untyped-def]
    page = logged_in
    first = post(live_server, 0)
    work()
    sink.wait_for(1)

    page.goto(f"{live_server}/rules/ui-forward/edit")
    page.get_by_label("Name", exact=True).fill("ui-forward-renamed")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#rb-notice")).to_contain_text("renamed from ui-forward")
    expect(page).to_have_url(f"{live_server}/rules/ui-forward-renamed/edit")

    page.goto(f"{live_server}/rules")
    expect(page.locator("#rules-table tbody tr")).to_have_count(1)
    expect(page.locator("#rule-ui-forward-renamed")).to_be_visible()
    assert rt.catalog.get_rule("ui-forward") is None

    # one rule: each new event is delivered once
    post(live_server, 1)
    post(live_server, 2)
    work()
    sink.wait_for(3)
    assert sorted(r.json()["n"] for r in sink.requests) == [0, 1, 2]
    # the earlier execution moved with the rule
    page.goto(f"{live_server}/events/{first}")
    expect(page.locator("article.execution").first).to_contain_text("ui-forward-renamed")


def test_delete_a_rule_then_a_source(logged_in, live_server, rt, sink, work, forward):  # type: ignore[no-untyped-def]
    page = logged_in
    event_id = post(live_server, 0)
    work()
    sink.wait_for(1)

    page.goto(f"{live_server}/rules")
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.get_by_role("button", name="Delete ui-forward").click()
    expect(page.get_by_role("alert")).to_contain_text("Rule “ui-forward” deleted.")
    assert "Its 1 past execution stay readable" in asked[0]
    assert rt.catalog.get_rule("ui-forward") is None
    # its past execution is still on the event's page
    page.goto(f"{live_server}/events/{event_id}")
    expect(page.locator("article.execution")).to_contain_text("ui-forward")
    expect(page.locator("article.execution .badge").first).to_have_text("succeeded")

    # a source with a rule: the confirmation asks what to do with it
    rt.catalog.save([], [rt.catalog.compiled_revision("ui-forward", 1).spec])
    page.goto(f"{live_server}/sources")
    page.get_by_role("link", name="Delete shop").click()
    expect(page.get_by_role("heading", name=re.compile(r"Delete source\s*shop"))).to_be_visible()
    form = page.locator("#delete-source")
    expect(form).to_contain_text("1 rule uses this source: ui-forward")
    expect(form.get_by_label(re.compile("Keep it, and do not delete the source"))).to_be_checked()
    page.get_by_role("button", name="Delete source").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was deleted")
    assert rt.catalog.get_source("shop") is not None
    page.get_by_label(re.compile("Delete this rule too")).check()
    page.get_by_role("button", name="Delete source").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Source “shop” and rule “ui-forward” deleted. Events already received are kept.")
    assert rt.catalog.get_source("shop") is None and rt.catalog.get_rule("ui-forward") is None
    assert get_event(rt.db, event_id)["executions"]  # kept


def test_versions_page_diff_and_restore(logged_in, live_server, rt, forward, api):  # type: ignore[no-untyped-def]
    spec = api.get("/api/v1/rules/ui-forward").get_json()["spec"]
    api.put("/api/v1/rules/ui-forward", json={**spec, "priority": 5})
    api.patch("/api/v1/rules/ui-forward", json={"enabled": False})
    page = logged_in
    page.goto(f"{live_server}/rules")
    page.get_by_role("link", name="Versions of ui-forward (version 2)").click()
    expect(page).to_have_url(f"{live_server}/rules/ui-forward/versions")
    expect(page.get_by_role("heading", name="Versions of ui-forward")).to_be_visible()
    rows = page.locator("#versions tbody tr")
    expect(rows).to_have_count(2)  # the switch made no version
    expect(rows.nth(0)).to_contain_text("changed priority")
    expect(rows.nth(0)).to_contain_text("API token tests")
    expect(page.locator("#history")).to_contain_text("disabled")
    # side by side: v1 and v2, the added line marked
    diff = page.locator("table.diff")
    expect(diff.locator("td.add")).to_have_text(re.compile("priority: 5"))
    screenshot(page, "rule-versions.png")
    page.get_by_label("Older").select_option("2")
    page.get_by_label("Newer").select_option("2")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#diff-same")).to_have_text("Version 2 and version 2 are the same.")

    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Restored version 1 of “ui-forward” as version 3.")
    rule = rt.catalog.get_rule("ui-forward")
    assert (rule.version, rule.priority, rule.enabled) == (3, 0, False)

    # a browser asking for an unknown rule's versions gets the styled page
    page.goto(f"{live_server}/rules/nope/versions")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_export_then_import_with_a_preview(logged_in, live_server, rt, forward,  # type: ignore[no-untyped-def]
                                           tmp_path: Path):
    page = logged_in
    page.goto(f"{live_server}/rules")
    page.get_by_role("link", name="Export", exact=True).click()
    with page.expect_download() as got:
        page.get_by_role("link", name="Download all").click()
    exported = Path(got.value.path()).read_text()
    assert exported == export(rt.catalog, None)  # what `hookwise export` prints
    # only the rule, unticking the source
    page.get_by_label("shop", exact=True).uncheck()
    with page.expect_download() as got:
        page.get_by_role("button", name="Download selected").click()
    selected = yaml.safe_load(Path(got.value.path()).read_text())
    assert selected["sources"] == [] and [r["name"] for r in selected["rules"]] == ["ui-forward"]

    doc = yaml.safe_load(exported)
    doc["rules"][0]["priority"] = 9
    doc["rules"].append({"name": "imported", "source": "shop",
                         "actions": [{"id": "w", "type": "delay", "seconds": 0}]})
    upload = tmp_path / "team.yaml"
    upload.write_text(yaml.safe_dump(doc))
    page.get_by_role("link", name="Rules").first.click()
    page.get_by_role("link", name="Import", exact=True).click()
    page.get_by_label("YAML file").set_input_files(str(upload))
    page.get_by_role("button", name="Preview").click()
    plan = page.locator("#import-plan")
    expect(plan).to_contain_text("Applying it would change 2 items")
    expect(page.locator("#plan-source-shop")).to_contain_text("unchanged")
    expect(page.locator("#plan-rule-ui-forward")).to_contain_text("changed")
    expect(page.locator("#plan-rule-ui-forward")).to_contain_text("changed priority")
    expect(page.locator("#plan-rule-imported")).to_contain_text("created")
    screenshot(page, "import-preview.png")
    assert rt.catalog.get_rule("imported") is None
    page.get_by_role("button", name="Apply team.yaml").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Imported team.yaml: 1 created, 1 changed, 1 unchanged.")
    expect(page.locator("#rule-imported")).to_be_visible()
    assert rt.catalog.get_rule("ui-forward").priority == 9

    # a broken file: every problem with its file and field, nothing applied
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: oops, source: shop, priority: high, actions: []}\n")
    page.get_by_role("link", name="Import", exact=True).click()
    page.get_by_label("YAML file").set_input_files(str(bad))
    page.get_by_role("button", name="Preview").click()
    errors = page.locator("#import-errors")
    expect(errors).to_contain_text("bad.yaml cannot be applied: 2 problems")
    expect(errors.locator("tr", has_text="priority")).to_contain_text("rule 'oops'")
    expect(errors.locator("tr", has_text="actions")).to_contain_text("bad.yaml")
    assert rt.catalog.get_rule("oops") is None
