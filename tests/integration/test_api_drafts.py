"""/api/v1/rules/test (dry run) and /api/v1/rules/backtest: nothing stored or sent."""

from __future__ import annotations

import pytest

TEST = "/api/v1/rules/test"
BACKTEST = "/api/v1/rules/backtest"

DRAFT = {
    "name": "big-order",
    "source": "shop",
    "when": {"all": [{"path": "$.body.type", "op": "eq", "value": "order.paid"},
                     {"path": "$.body.total", "op": "gt", "value": 100}]},
    "actions": [
        {"id": "notify", "type": "webhook", "url": "{{ secrets.SINK_URL }}/orders",
         "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
         "json": {"order": "{{ body.id }}", "total": "{{ body.total }}"}},
        {"id": "mail", "type": "email", "to": "{{ body.email }}", "subject": "Order",
         "text": "ticket {{ steps.notify.json.ticket }}",
         "when": {"path": "$.body.email", "op": "exists"}},
    ],
}


@pytest.fixture
def shop(api, rt, sink):  # type: ignore[no-untyped-def]
    assert api.post("/api/v1/sources", json={"slug": "shop"}).status_code == 201
    rt.secrets.set("SINK_URL", sink.url)
    rt.secrets.set("TOKEN", "tok-very-secret")


def totals(api):  # type: ignore[no-untyped-def]
    return (api.get("/api/v1/events").get_json()["total"],
            api.get("/api/v1/executions").get_json()["total"])


def test_dry_run_of_a_matching_event(api, shop, sink, rt):  # type: ignore[no-untyped-def]
    resp = api.post(TEST, json={"rule": DRAFT, "event": {
        "body": {"type": "order.paid", "id": "o-1", "total": 250},
        "headers": {"X-Shop": "eu"}, "query": {"a": "1"}}})
    assert resp.status_code == 200, resp.get_json()
    run = resp.get_json()
    assert run["rule"] == "big-order" and run["matched"] is True and run["reason"] is None
    assert run["trace"]
    notify, mail = run["steps"]
    assert notify["id"] == "notify" and notify["would_run"] is True and notify["error"] is None
    assert notify["rendered"]["url"] == "[secret:SINK_URL]/orders"
    assert notify["rendered"]["json"] == {"order": "o-1", "total": 250}
    assert "tok-very-secret" not in resp.get_data(as_text=True)
    assert mail["would_run"] is False and "email" in mail["skipped_reason"]
    # nothing stored, queued or sent
    assert totals(api) == (0, 0)
    assert rt.queue.count == 0
    assert sink.requests == []


def test_dry_run_explains_a_miss(api, shop):  # type: ignore[no-untyped-def]
    resp = api.post(TEST, json={"rule": DRAFT, "event": {
        "body": {"type": "order.paid", "id": "o-1", "total": 10}}})
    run = resp.get_json()
    assert resp.status_code == 200
    assert run["matched"] is False and run["steps"] == []
    assert "$.body.total" in run["reason"] and "10" in run["reason"]


def test_dry_run_shows_template_errors_per_step(api, shop):  # type: ignore[no-untyped-def]
    draft = {**DRAFT, "when": None,
             "actions": [{"type": "webhook", "url": "http://x/{{ body.missing.deeper }}"}]}
    run = api.post(TEST, json={"rule": draft, "event": {"body": {}}}).get_json()
    assert run["matched"] is True
    assert run["steps"][0]["error"] and "missing" in run["steps"][0]["error"]


def test_dry_run_of_a_stored_event(api, shop, client, sink):  # type: ignore[no-untyped-def]
    hook = client.post("/hooks/shop?via=test", json={"type": "order.paid", "id": "o-9",
                                                     "total": 900, "email": "a@b.test"},
                       headers={"X-Shop": "eu"})
    event_id = hook.get_json()["event_id"]
    draft = {**DRAFT, "actions": [*DRAFT["actions"],
                                  {"type": "reply", "json": {"shop": "{{ headers['x-shop'] }}",
                                                             "via": "{{ query.via }}",
                                                             "id": "{{ event.id }}"}}]}
    resp = api.post(TEST, json={"rule": draft, "event_id": event_id})
    assert resp.status_code == 200, resp.get_json()
    run = resp.get_json()
    assert run["matched"] is True
    notify, mail, reply = run["steps"]
    assert notify["rendered"]["json"]["order"] == "o-9"
    assert mail["would_run"] is True
    assert "<steps.notify.json.ticket>" in mail["rendered"]["text"]
    assert reply["rendered"]["json"] == {"shop": "eu", "via": "test", "id": event_id}
    assert totals(api) == (1, 0)
    assert sink.requests == []

    other = api.post(TEST, json={"rule": {**DRAFT, "source": "crm"}, "event_id": event_id})
    assert other.get_json()["matched"] is False
    assert "crm" in other.get_json()["reason"]

    missing = api.post(TEST, json={"rule": DRAFT, "event_id": "evt_nope"})
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


@pytest.mark.parametrize(("payload", "loc"), [
    ({"rule": {**DRAFT, "actions": [{"type": "webhook"}]}, "event": {"body": {}}},
     "actions[0].url"),
    ({"rule": {**DRAFT, "priority": "high"}, "event": {"body": {}}}, "priority"),
    ({"rule": DRAFT}, ""),
    ({"rule": DRAFT, "event": {"body": {}}, "event_id": "evt_1"}, ""),
    ({"rule": DRAFT, "event": {"body": {}, "headers": {"a": 1}}}, "event.headers.a"),
    ({"event": {"body": {}}}, "rule"),
])
def test_dry_run_validation(api, shop, payload, loc):  # type: ignore[no-untyped-def]
    resp = api.post(TEST, json=payload)
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["error"] == "validation_failed"
    assert loc in [e["loc"] for e in resp.get_json()["errors"]]


def test_backtest_over_stored_events(api, shop, client, sink):  # type: ignore[no-untyped-def]
    ids = []
    for body in ({"type": "order.paid", "id": "a", "total": 500},
                 {"type": "order.paid", "id": "b", "total": 5},
                 {"type": "order.paid", "id": "c", "total": 150}):
        ids.append(client.post("/hooks/shop", json=body).get_json()["event_id"])
    api.post("/api/v1/sources", json={"slug": "crm"})
    client.post("/hooks/crm", json={"type": "order.paid", "total": 1000})

    resp = api.post(BACKTEST, json={"rule": DRAFT})
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert (out["total"], out["matched"]) == (3, 2)
    assert [r["event_id"] for r in out["items"]] == ids[::-1]  # newest first
    assert [r["matched"] for r in out["items"]] == [True, False, True]
    miss = out["items"][1]
    assert "$.body.total" in miss["reason"] and miss["received_at"] and miss["trace"]

    limited = api.post(BACKTEST, json={"rule": DRAFT, "limit": 1}).get_json()
    assert limited["total"] == 1 and limited["items"][0]["event_id"] == ids[-1]
    crm = api.post(BACKTEST, json={"rule": DRAFT, "source": "crm"}).get_json()
    assert (crm["total"], crm["matched"]) == (1, 1)

    bad = api.post(BACKTEST, json={"rule": {**DRAFT, "actions": []}, "limit": 0})
    assert bad.status_code == 422
    assert {e["loc"] for e in bad.get_json()["errors"]} >= {"limit"}
    bad_rule = api.post(BACKTEST, json={"rule": {**DRAFT, "actions": []}})
    assert [e["loc"] for e in bad_rule.get_json()["errors"]] == ["actions"]
    assert api.get("/api/v1/executions").get_json()["total"] == 0
    assert sink.requests == []


def test_dry_run_has_the_workers_cpu_limit_in_a_web_thread(live_server, api_token, shop):  # type: ignore[no-untyped-def]
    """Issue 12, item 5: a dry run served by a web thread (not the main thread, where a
    signal timer would do) stops at the worker's CPU budget, and the thread is free
    again for the next request."""

    import httpx

    loop = "{% for i in range(10000) %}"
    spin = loop * 3 + "{% endfor %}" * 3  # 10^12 iterations: hours without a limit
    draft = {**DRAFT, "when": None,
             "actions": [{"id": "spin", "type": "state", "key": "k", "set": {"x": spin}}]}
    with httpx.Client(base_url=live_server, timeout=60,
                      headers={"Authorization": f"Bearer {api_token}"}) as http:
        try:
            resp = http.post(TEST, json={"rule": draft, "event": {"body": {}}})
        except httpx.ReadTimeout:
            pytest.fail("the dry run was still rendering after 60 s: no CPU limit")
        assert resp.status_code == 200, resp.text
        (step,) = resp.json()["steps"]
        assert step["id"] == "spin" and step["rendered"] is None
        assert "CPU time" in (step["error"] or "")
        again = http.post(TEST, json={"rule": DRAFT, "event": {
            "body": {"type": "order.paid", "id": "o-2", "total": 500}}})
        assert again.status_code == 200 and again.json()["matched"] is True
        assert again.json()["steps"][0]["error"] is None
