"""Connections in Chromium (issue 15, item 6): create one on the Connections page, choose
it in the rule builder's webhook step (offered from the stored connections), save, and
the rule's step holds it; the pages report no CSP violation."""

from __future__ import annotations

import pytest

from rules.schema import parse_rule, parse_source

pytestmark = pytest.mark.slow


def test_create_a_connection_and_choose_it_in_the_builder(  # type: ignore[no-untyped-def]
        logged_in, live_server, rt) -> None:
    page = logged_in
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)
    rt.catalog.save([parse_source({"slug": "shop"})], [])

    page.goto(f"{live_server}/connections")
    page.get_by_role("link", name="New connection").click()
    page.get_by_label("Name", exact=True).fill("chat")
    page.get_by_label("Type", exact=True).select_option("slack")
    page.get_by_label("Auth type").select_option("bearer")
    page.get_by_label("Secret name").fill("SLACK_BOT_TOKEN")
    page.get_by_role("button", name="Create connection").click()
    page.get_by_text("Connection “chat” created.").wait_for()
    row = page.locator("#connections tbody tr")
    assert row.count() == 1
    assert "https://slack.com/api" in row.inner_text()
    assert "not set: SLACK_BOT_TOKEN" in row.inner_text()

    rt.catalog.save([], [parse_rule({"name": "notify", "source": "shop", "actions": [
        {"id": "post", "type": "webhook", "url": "https://slack.com/api/chat.postMessage",
         "json": {"text": "hi"}}]})])
    page.goto(f"{live_server}/rules/notify/edit")
    box = page.locator('[data-loc="actions[0].connection"] input')
    assert box.get_attribute("list") == "rb-connections"
    offered = page.locator("#rb-connections option")
    assert [offered.nth(i).get_attribute("value") for i in range(offered.count())] == ["chat"]
    box.fill("chat")
    page.get_by_label("URL", exact=True).fill("chat.postMessage")
    page.get_by_role("button", name="Save rule").click()
    page.get_by_text("Saved rule notify").wait_for()
    saved = rt.catalog.get_rule("notify").spec["actions"][0]
    assert (saved["connection"], saved["url"]) == ("chat", "chat.postMessage")

    # and it comes back into the form when the rule is opened again
    page.reload()
    assert page.locator('[data-loc="actions[0].connection"] input').input_value() == "chat"
    page.goto(f"{live_server}/connections/chat/delete")
    assert "cannot be deleted while rules use it" in page.content()
    assert violations == []
