"""The rule builder's server views through the Flask test client: login, the initial data
the page starts from, a stored rule to edit, 404s and the static assets. (The whole page in
Chromium: tests/system/test_ui_builder.py.)"""

from __future__ import annotations

import json
import re

from rules.schema import parse_rule, parse_source


def login(client, user) -> None:  # type: ignore[no-untyped-def]
    with client.session_transaction() as sess:
        sess["user_id"] = user.id


def add_source(rt, slug: str = "shop") -> None:  # type: ignore[no-untyped-def]
    rt.catalog.save([parse_source({"slug": slug})], [])


def add_rule(rt, spec: dict) -> None:  # type: ignore[no-untyped-def]
    rt.catalog.save([], [parse_rule(spec)])


def initial_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="rb-initial">(.*?)</script>', html, re.S)
    assert m, "initial data missing"
    return json.loads(m.group(1))


def test_builder_needs_login(client, rt) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/rules/new")
    assert resp.status_code == 302
    assert "/login" in resp.headers["Location"]


def test_new_rule_page_preselects_source(client, rt, user) -> None:  # type: ignore[no-untyped-def]
    add_source(rt, "shop")
    add_source(rt, "github")
    login(client, user)
    resp = client.get("/rules/new?source=shop")
    assert resp.status_code == 200
    data = initial_data(resp.get_data(as_text=True))
    assert data["rule"]["source"] == "shop"
    assert data["sources"] == ["github", "shop"]
    assert data["editing"] is None
    assert (
        initial_data(client.get("/rules/new?source=nope").get_data(as_text=True))["rule"]["source"]
        == "github"  # several sources, no event yet: the first, never "*" (issue 14, item 12)
    )


def test_edit_page_carries_the_stored_rule(client, rt, user) -> None:  # type: ignore[no-untyped-def]
    add_source(rt)
    add_rule(
        rt,
        {
            "name": "r1",
            "source": "shop",
            "priority": 3,
            "when": {"path": "$.body.a", "op": "eq", "value": 1},
            "actions": [{"type": "delay", "seconds": 1}],
        },
    )
    login(client, user)
    resp = client.get("/rules/r1/edit")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    data = initial_data(html)
    assert data["editing"] == "r1"
    assert data["rule"]["priority"] == 3
    assert data["rule"]["when"] == {"path": "$.body.a", "op": "eq", "value": 1}
    assert "vendor/js-yaml.min.js" in html and "builder.js" in html


def test_edit_unknown_rule_is_404(client, rt, user) -> None:  # type: ignore[no-untyped-def]
    login(client, user)
    resp = client.get("/rules/nope/edit")
    assert resp.status_code == 404
    assert "nope" in resp.get_data(as_text=True)


def test_builder_assets_are_served(client) -> None:  # type: ignore[no-untyped-def]
    for path in (
        "/static/builder.js",
        "/static/builder.css",
        "/static/vendor/js-yaml.min.js",
        "/static/vendor/js-yaml.LICENSE",
    ):
        resp = client.get(path)
        assert resp.status_code == 200, path
        resp.close()
