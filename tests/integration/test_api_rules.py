"""/api/v1/rules: CRUD by name on SQLite and PostgreSQL, the enable/priority switch,
revisions, activity, and validation errors located for the rule builder."""

from __future__ import annotations

import pytest

from tests.servers import Reply

RULES = "/api/v1/rules"


def rule_doc(sink_url: str = "http://127.0.0.1:9/x", **extra):  # type: ignore[no-untyped-def]
    return {
        "name": "paid-order",
        "source": "shop",
        "when": {"path": "$.body.type", "op": "eq", "value": "order.paid"},
        "actions": [{"id": "notify", "type": "webhook", "url": f"{sink_url}/orders",
                     "json": {"order": "{{ body.id }}"}}],
        **extra,
    }


@pytest.fixture
def shop(api):  # type: ignore[no-untyped-def]
    assert api.post("/api/v1/sources", json={"slug": "shop"}).status_code == 201


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_rule_crud_round_trip(api, shop):  # type: ignore[no-untyped-def]
    resp = api.post(RULES, json=rule_doc())
    assert resp.status_code == 201, resp.get_json()
    rule = resp.get_json()
    assert resp.headers["Location"] == f"{RULES}/paid-order"
    assert {k: rule[k] for k in ("name", "source", "enabled", "priority", "version",
                                 "last_matched_at", "matches")} == {
        "name": "paid-order", "source": "shop", "enabled": True, "priority": 0, "version": 1,
        "last_matched_at": None, "matches": 0}
    assert rule["spec"]["actions"][0] == {"id": "notify", "type": "webhook",
                                          "url": "http://127.0.0.1:9/x/orders",
                                          "json": {"order": "{{ body.id }}"}}
    assert rule["updated_at"]

    dup = api.post(RULES, json=rule_doc())
    assert dup.status_code == 409 and dup.get_json()["error"] == "conflict"

    assert api.get(f"{RULES}/paid-order").get_json() == rule
    listed = api.get(RULES).get_json()
    assert listed["items"] == [rule] and listed["total"] == 1

    put = api.put(f"{RULES}/paid-order", json=rule_doc(priority=5, description="v2"))
    assert put.status_code == 200
    assert put.get_json()["version"] == 2 and put.get_json()["priority"] == 5
    same = api.put(f"{RULES}/paid-order", json=rule_doc(priority=5, description="v2"))
    assert same.get_json()["version"] == 2  # unchanged documents make no revision

    off = api.patch(f"{RULES}/paid-order", json={"enabled": False})
    assert off.status_code == 200
    assert off.get_json()["enabled"] is False and off.get_json()["spec"]["enabled"] is False
    # switching off is a history entry, not a new version
    assert off.get_json()["priority"] == 5 and off.get_json()["version"] == 2
    up = api.patch(f"{RULES}/paid-order", json={"priority": -1, "enabled": True})
    assert (up.get_json()["priority"], up.get_json()["enabled"]) == (-1, True)

    versions = api.get(f"{RULES}/paid-order/versions").get_json()["items"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[-1]["spec"] == rule["spec"]

    new = api.put(f"{RULES}/other", json={**rule_doc(), "name": "other"})
    assert new.status_code == 201
    nameless = {k: v for k, v in rule_doc().items() if k != "name"}
    assert api.put(f"{RULES}/third", json=nameless).status_code == 201

    assert api.delete(f"{RULES}/paid-order").status_code == 204
    assert api.get(f"{RULES}/paid-order").status_code == 404
    assert api.delete(f"{RULES}/paid-order").status_code == 404
    assert api.patch(f"{RULES}/paid-order", json={"enabled": True}).status_code == 404
    # revisions outlive the rule: old executions still show what they ran
    assert len(api.get(f"{RULES}/paid-order/versions").get_json()["items"]) == 3
    assert api.get(f"{RULES}/never/versions").status_code == 404
    assert [r["name"] for r in api.get(RULES).get_json()["items"]] == ["other", "third"]


def test_validation_errors_are_located_in_the_rule(api, shop):  # type: ignore[no-untyped-def]
    doc = rule_doc()
    doc["actions"] = [{"type": "webhook", "json": {"a": "{{ body.x "}},
                      {"type": "teleport"}]
    doc["when"] = {"path": "$.body.type", "op": "almost", "value": 1}
    resp = api.post(RULES, json=doc)
    assert resp.status_code == 422
    data = resp.get_json()
    assert data["error"] == "validation_failed"
    locs = {e["loc"]: e for e in data["errors"]}
    assert "actions[0].url" in locs
    assert locs["actions[0].url"]["message"] == "required field is missing"
    assert any(loc.startswith("actions[0].json") for loc in locs)
    assert "actions[1]" in locs and "teleport" in locs["actions[1]"]["message"]
    assert any(loc.startswith("when") for loc in locs)
    assert data["message"].startswith("the request is invalid: ")
    assert api.get(RULES).get_json()["total"] == 0


def test_a_rule_needs_an_existing_source(api):  # type: ignore[no-untyped-def]
    resp = api.post(RULES, json=rule_doc())
    assert resp.status_code == 422
    [err] = resp.get_json()["errors"]
    assert err["loc"] == "source" and err["value"] == "shop"
    assert "no source named 'shop'" in err["message"]
    assert api.put(f"{RULES}/paid-order", json=rule_doc()).status_code == 422
    star = api.post(RULES, json=rule_doc(source="*"))
    assert star.status_code == 201


def test_patch_and_put_refuse_bad_bodies(api, shop):  # type: ignore[no-untyped-def]
    api.post(RULES, json=rule_doc())
    for patch in ({}, {"enabled": "perhaps"}, {"name": "Not A Name!"}, {"colour": "red"}):
        resp = api.patch(f"{RULES}/paid-order", json=patch)
        assert resp.status_code == 422, patch
        assert resp.get_json()["errors"]
    mismatch = api.put(f"{RULES}/paid-order", json=rule_doc(name="renamed"))
    assert mismatch.status_code == 422
    assert mismatch.get_json()["errors"][0]["loc"] == "name"


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_out_of_range_numbers_are_refused_naming_the_field(api, shop):  # type: ignore[no-untyped-def]
    """Issue 12, item 11: 99999999999999999999 overflowed SQLite's integer (a 500)."""
    huge = 99999999999999999999
    for method, url, doc, loc in (
        ("post", RULES, rule_doc(priority=huge), "priority"),
        ("put", f"{RULES}/paid-order", rule_doc(priority=-huge), "priority"),
        ("post", RULES, rule_doc(actions=[{"type": "state", "key": "k", "ttl_s": huge}]),
         "actions[0].ttl_s"),
        ("post", RULES, rule_doc(actions=[{"type": "delay", "seconds": huge}]),
         "actions[0].seconds"),
    ):
        resp = getattr(api, method)(url, json=doc)
        assert resp.status_code == 422, (loc, resp.get_json())
        assert [e["loc"] for e in resp.get_json()["errors"]] == [loc]
        assert loc in resp.get_json()["message"]
    assert api.get(RULES).get_json()["total"] == 0

    assert api.post(RULES, json=rule_doc(priority=7)).status_code == 201
    for bad in (huge, -huge, 1_000_001):
        resp = api.patch(f"{RULES}/paid-order", json={"priority": bad})
        assert resp.status_code == 422, resp.get_json()
        assert [e["loc"] for e in resp.get_json()["errors"]] == ["priority"]
    assert api.get(f"{RULES}/paid-order").get_json()["priority"] == 7
    ok = api.patch(f"{RULES}/paid-order", json={"priority": 1_000_000})
    assert ok.status_code == 200 and ok.get_json()["priority"] == 1_000_000


def test_a_rule_may_be_called_test(api, shop):  # type: ignore[no-untyped-def]
    assert api.post(RULES, json=rule_doc(name="test")).status_code == 201
    assert api.get(f"{RULES}/test").get_json()["name"] == "test"
    assert api.patch(f"{RULES}/test", json={"enabled": False}).status_code == 200


def test_rules_report_their_matches(api, shop, client, work, sink):  # type: ignore[no-untyped-def]
    sink.respond("/orders", Reply(status=200))
    api.post(RULES, json=rule_doc(sink.url))
    client.post("/hooks/shop", json={"type": "order.paid", "id": "o-1"})
    client.post("/hooks/shop", json={"type": "order.lost", "id": "o-2"})
    work(until=lambda: api.get(f"{RULES}/paid-order").get_json()["matches"] == 1
         and len(sink.requests) == 1)
    rule = api.get(f"{RULES}/paid-order").get_json()
    assert rule["matches"] == 1 and rule["last_matched_at"]
    assert api.get(RULES).get_json()["items"][0]["matches"] == 1
