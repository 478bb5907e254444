"""The rule builder's field picker, in Chromium (issue 13, item 8): for every key of a
table of awkward keys the path it builds compiles with ``compile_path`` and selects
exactly that key's value; a key a path box cannot hold (a line break: the box is one
line) is said to be so instead of getting a wrong path. Also the recursive-descent hint
(item 13)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from rules.paths import compile_path
from rules.schema import parse_source

pytestmark = pytest.mark.slow

AWKWARD = [
    "plain", "snake_case", "a.b", "a-b", "-a", "a-", "a b", " lead", "trail ", "tab\there",
    "it's", 'say "hi"', "both'\"", "a\\b", "\\", "\\'", "ends\\", "\\\"", "'", '"',
    "ключ", "名前", "😀", "é", "e\u0301", "0", "123", "01", "-1", "1.5", "1-2", "1x",
    "where", "wherenot", "and", "or", "in", "not", "true", "false", "null", "this",
    "$", "@", "@type", "a@b", "[0]", "a[b]", "[", "]", "*", "?", "..", ".", "", "`len`",
    "a,b", "x:y", "(", ")", "a==b", "&&", "||", "__proto__", "where.x", "$.body",
]
NO_PATH = ["line\nbreak", "cr\rhere"]


def body() -> dict[str, Any]:
    doc: dict[str, Any] = {key: f"v{i}" for i, key in enumerate(AWKWARD)}
    doc.update({key: f"n{i}" for i, key in enumerate(NO_PATH)})
    doc["nest.ed"] = {"in'ner\\": [{"deep \"key\"": "deep"}, {"where": ["w0", "w1"]}]}
    return doc


def open_builder(page, live_server: str, rt) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    rt.catalog.save([parse_source({"slug": "shop"})], [])
    page.goto(f"{live_server}/rules/new?source=shop")
    sample = body()
    page.get_by_label("Body (JSON or text)").fill(json.dumps(sample))
    page.locator('#rb-tree .rb-key[data-path="$.body.plain"]').wait_for()
    return sample


TOP = "#rb-tree > ul > li:first-child > details > ul > li"  # body's own keys


def picker_keys(page, under: str = TOP) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The key buttons of body's keys: each key, the path it builds (or that it has none)."""
    return page.evaluate(
        """(under) => [...document.querySelectorAll(
                `${under} > .rb-key, ${under} > details > summary > .rb-key`)]
            .map((b) => ({ key: b.textContent, path: b.dataset.path ?? null,
                           nopath: b.hasAttribute('data-nopath') }))""",
        under,
    )


def test_every_awkward_key_gets_a_path_that_selects_exactly_it(logged_in, live_server, rt) -> None:  # type: ignore[no-untyped-def]
    sample = open_builder(logged_in, live_server, rt)
    doc = {"body": sample}
    seen = {k["key"]: k for k in picker_keys(logged_in)}
    wrong = []
    for key in AWKWARD:
        path = seen[key]["path"]
        assert path is not None, key
        try:
            got = compile_path(path).values(doc)
        except Exception as exc:  # noqa: BLE001 - collected, reported together
            got = f"refused: {exc}"
        if got != [sample[key]]:
            wrong.append((key, path, got))
    assert not wrong, "\n".join(map(repr, wrong))

    # inside an object and a list: keys with quotes and backslashes
    nested = {k["key"]: k["path"] for k in picker_keys(logged_in, "#rb-tree li")}
    assert compile_path(nested["deep \"key\""]).values(doc) == ["deep"]
    assert compile_path(nested["in'ner\\"]).values(doc) == [sample["nest.ed"]["in'ner\\"]]


def test_a_key_a_path_box_cannot_hold_is_said_to_be_so(logged_in, live_server, rt) -> None:  # type: ignore[no-untyped-def]
    page = logged_in
    open_builder(page, live_server, rt)
    for key in NO_PATH:
        button = page.locator("#rb-tree .rb-key[data-nopath]").filter(has_text=key.split()[0][:4])
        assert button.count() == 1, key
        assert button.get_attribute("data-path") is None
        assert "line break" in button.locator("xpath=..").inner_text()
        button.click(force=True)  # aria-disabled, yet it answers a click with the reason
        alert = page.locator("#rb-sample-error")
        assert alert.is_visible()
        assert "cannot pick this key: it has a line break" in alert.inner_text()


def test_clicking_awkward_keys_fills_the_path_and_the_dry_run_agrees(  # type: ignore[no-untyped-def]
    logged_in, live_server, rt
) -> None:
    page = logged_in
    sample = open_builder(page, live_server, rt)
    page.get_by_label("Name", exact=True).fill("awkward-keys")
    page.locator("#rb-when > .rb-group").get_by_role("button", name="+ Condition").click()
    cond = page.locator('#rb-when [data-loc="when.all[0]"]')
    box = cond.get_by_label("Path", exact=True)
    for key in ["both'\"", "a\\b", "where"]:
        box.focus()
        leaves = page.locator("#rb-tree > ul > li:first-child > details > ul > li > .rb-key")
        next(b for b in leaves.all() if b.text_content() == key).click()
        path = box.input_value()
        assert compile_path(path).values({"body": sample}) == [sample[key]], (key, path)

    # the server's dry run evaluates the picked path the same way: eq its value is true
    cond.get_by_label("Operator", exact=True).select_option("eq")
    cond.get_by_label("Value", exact=True).fill(sample["where"])
    page.get_by_label("Add a step").select_option("delay")
    page.get_by_role("button", name="+ Add step").click()
    page.get_by_label("Seconds", exact=True).fill("1")
    with page.expect_response("**/api/v1/rules/test") as answer:
        page.get_by_role("button", name="Test on sample").click()
    assert answer.value.status == 200, answer.value.text()
    expect(cond.locator(":scope > .rb-cond-foot > .rb-verdict")).to_contain_text(
        f'✓ true — saw "{sample["where"]}"')


def test_recursive_descent_hint_names_body_descent(logged_in, live_server, rt) -> None:  # type: ignore[no-untyped-def]
    page = logged_in
    open_builder(page, live_server, rt)
    hint = page.locator("#rb-descent-hint").inner_text()
    assert "$..id" in hint and "event.id" in hint and "$.body..id" in hint
