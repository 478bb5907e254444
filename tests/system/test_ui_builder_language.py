"""The rule builder in Chromium builds its form from the server's description of the language
(rules.vocabulary.describe, in the page's initial JSON), not from lists of its own: what the
server says is what the page offers, even an operator or a step field the JS never heard of.
(The builder's other browser tests: tests/system/test_ui_builder.py.)"""

from __future__ import annotations

import json

import pytest

from rules.operators import OPERATORS
from rules.schema import parse_source
from rules.step_models import STEP_TYPES
from rules.vocabulary import describe

pytestmark = pytest.mark.slow

OPTIONS = "el => [...el.options].map(o => o.value)"


def open_builder(page, live_server: str, rt) -> None:  # type: ignore[no-untyped-def]
    rt.catalog.save([parse_source({"slug": "shop"})], [])
    page.goto(f"{live_server}/rules/new?source=shop")
    page.locator("#rb-when > .rb-group").get_by_role("button", name="+ Condition").click()


def test_operators_and_step_types_are_the_servers(logged_in, live_server, rt) -> None:  # type: ignore[no-untyped-def]
    page = logged_in
    open_builder(page, live_server, rt)
    initial = json.loads(page.locator("#rb-initial").text_content() or "")
    assert initial["language"] == describe()
    condition = page.locator('#rb-when [data-loc="when.all[0]"]')
    assert condition.get_by_label("Operator", exact=True).evaluate(OPTIONS) == list(OPERATORS)
    assert page.get_by_label("Add a step").evaluate(OPTIONS) == list(STEP_TYPES)


def test_an_operator_and_a_field_only_the_server_knows(  # type: ignore[no-untyped-def]
    logged_in, live_server, rt, monkeypatch
) -> None:
    language = describe()
    language["operators"].append({"name": "near", "value": "list", "ordered": False,
                                  "negates": None})  # fmt: skip
    [webhook] = [s for s in language["steps"] if s["type"] == "webhook"]
    webhook["fields"].append({"name": "proxy", "kind": "text", "required": False,
                              "default": "direct", "template": True})  # fmt: skip
    monkeypatch.setattr("web.ui.builder.describe", lambda: language)
    page = logged_in
    open_builder(page, live_server, rt)

    first = page.locator('#rb-when [data-loc="when.all[0]"]')
    first.get_by_label("Path", exact=True).fill("$.body.city")
    first.get_by_label("Operator", exact=True).select_option("near")  # a list operator
    first.get_by_label("Values (comma separated)").fill("paris, lyon")
    page.get_by_label("Add a step").select_option("webhook")
    page.get_by_role("button", name="+ Add step").click()
    hook = page.locator('[data-loc="actions[0]"]')
    proxy = hook.get_by_label("Proxy", exact=True)  # labelled by its name, placeholder = default
    assert proxy.get_attribute("placeholder") == "direct"
    assert "rb-tpl" in (proxy.get_attribute("class") or "")
    proxy.fill("{{ body.proxy }}")

    spec = page.evaluate("window.hookwiseBuilder.toSpec()")
    [condition] = spec["when"]["all"]
    assert condition == {"path": "$.body.city", "op": "near", "value": ["paris", "lyon"]}
    assert spec["actions"][0]["proxy"] == "{{ body.proxy }}"
    assert spec["actions"][0]["method"] == "POST"  # the server's default
