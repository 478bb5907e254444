"""/api/v1/events: list with filters, get with traces and executions, replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.servers import Reply

EVENTS = "/api/v1/events"


@pytest.fixture
def posted(api, client, sink):  # type: ignore[no-untyped-def]
    """Three events (two shop, one crm) and a rule that calls the sink for paid orders."""
    sink.respond("/orders", Reply(status=200, json={"ok": True}))
    for slug in ("shop", "crm"):
        assert api.post("/api/v1/sources", json={"slug": slug}).status_code == 201
    rule = {"name": "paid", "source": "shop",
            "when": {"path": "$.body.type", "op": "eq", "value": "order.paid"},
            "actions": [{"id": "notify", "type": "webhook", "url": f"{sink.url}/orders",
                         "json": {"id": "{{ body.id }}"}}]}
    assert api.post("/api/v1/rules", json=rule).status_code == 201
    ids = {}
    for key, slug, body in (
        ("paid", "shop", {"type": "order.paid", "id": "o-1", "total": 50, "vip": True}),
        ("refund", "shop", {"type": "order.refunded", "id": "o-2", "note": "damaged box"}),
        ("lead", "crm", {"kind": "lead", "name": "Zed"}),
    ):
        resp = client.post(f"/hooks/{slug}", json=body, headers={"X-Trace": key})
        assert resp.status_code == 202
        ids[key] = resp.get_json()["event_id"]
    return ids


def settle(api, work, sink, calls: int = 1):  # type: ignore[no-untyped-def]
    """Run the worker until every event is matched and the sink got ``calls`` requests."""
    work(until=lambda: listed(api, "?status=pending")["total"] == 0
         and len(sink.requests) >= calls)


def listed(api, query: str = ""):  # type: ignore[no-untyped-def]
    resp = api.get(f"{EVENTS}{query}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def ids_of(page):  # type: ignore[no-untyped-def]
    return [e["id"] for e in page["items"]]


def test_event_filters(api, posted, work, sink):  # type: ignore[no-untyped-def]
    everything = listed(api)
    assert everything["total"] == 3
    assert ids_of(everything) == [posted["lead"], posted["refund"], posted["paid"]]
    first = everything["items"][0]
    assert first["source"] == "crm" and first["status"] == "pending"
    assert "raw_body" not in first and "headers" not in first

    assert ids_of(listed(api, "?source=crm")) == [posted["lead"]]
    assert listed(api, "?status=pending")["total"] == 3
    settle(api, work, sink)
    assert listed(api, "?status=pending")["total"] == 0
    assert listed(api, "?status=processed&source=shop")["total"] == 2
    assert ids_of(listed(api, "?q=damaged")) == [posted["refund"]]
    assert ids_of(listed(api, f"?q={posted['lead']}")) == [posted["lead"]]
    assert ids_of(listed(api, "?path=$.body.type&value=order.paid")) == [posted["paid"]]
    assert ids_of(listed(api, "?path=$.body.vip&value=true")) == [posted["paid"]]
    assert ids_of(listed(api, "?path=$.body.kind")) == [posted["lead"]]
    assert ids_of(listed(api, "?path=$.headers.x-trace&value=refund")) == [posted["refund"]]

    hour = timedelta(hours=1)
    future = (datetime.now(UTC) + hour).isoformat()
    past = (datetime.now(UTC) - hour).replace(tzinfo=None).isoformat()  # naive = UTC
    assert listed(api, f"?since={future.replace('+', '%2B')}")["total"] == 0
    assert listed(api, f"?since={past}")["total"] == 3
    assert listed(api, f"?until={past}")["total"] == 0
    day = everything["items"][-1]["received_at"][:10]  # the oldest event's date (UTC)
    assert listed(api, f"?since={day}")["total"] == 3  # a bare date is its midnight, UTC
    assert listed(api, f"?until={day}")["total"] == 0

    page = listed(api, "?limit=2")
    assert (page["limit"], page["next_offset"], len(page["items"])) == (2, 2, 2)
    assert ids_of(listed(api, "?limit=2&offset=2")) == [posted["paid"]]
    assert listed(api, "?limit=1000")["limit"] == 200


@pytest.mark.parametrize(("query", "loc"), [
    ("?path=$.body[", "path"),
    ("?since=yesterday", "since"),
    ("?until=2024-13-45", "until"),
    ("?status=lost", "status"),
    ("?limit=0", "limit"),
    ("?offset=-1", "offset"),
])
def test_bad_event_filters(api, query, loc):  # type: ignore[no-untyped-def]
    resp = api.get(f"{EVENTS}{query}")
    assert resp.status_code == 422
    data = resp.get_json()
    assert data["error"] == "validation_failed"
    assert [e["loc"] for e in data["errors"]] == [loc]
    assert loc in data["message"]


def test_get_event_with_traces_and_executions(api, posted, work, sink):  # type: ignore[no-untyped-def]
    settle(api, work, sink)
    work(until=lambda: api.get("/api/v1/executions?status=succeeded").get_json()["total"])
    resp = api.get(f"{EVENTS}/{posted['paid']}")
    assert resp.status_code == 200
    data = resp.get_json()
    assert data["event"]["id"] == posted["paid"]
    assert data["event"]["body"]["id"] == "o-1"
    assert data["event"]["headers"]["x-trace"] == "paid"
    assert '"o-1"' in data["event"]["raw_body"]
    [trace] = data["matches"]
    assert trace["rule_name"] == "paid" and trace["matched"] is True
    [ex] = data["executions"]
    assert ex["status"] == "succeeded"
    assert [s["step_id"] for s in ex["steps"]] == ["notify"]
    assert ex["steps"][0]["rendered"]["json"] == {"id": "o-1"}

    miss = api.get(f"{EVENTS}/{posted['refund']}").get_json()
    assert miss["executions"] == []
    assert miss["matches"][0]["matched"] is False and miss["matches"][0]["reason"]

    missing = api.get(f"{EVENTS}/evt_nope")
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "not_found",
                                  "message": "event 'evt_nope' does not exist"}


def test_replay_runs_a_new_round(api, posted, work, sink):  # type: ignore[no-untyped-def]
    pending = api.post(f"{EVENTS}/{posted['paid']}/replay")
    assert pending.status_code == 409 and pending.get_json()["error"] == "conflict"

    settle(api, work, sink)
    resp = api.post(f"{EVENTS}/{posted['paid']}/replay")
    assert resp.status_code == 202
    assert resp.get_json() == {"event_id": posted["paid"], "round": 1}
    work(until=lambda: api.get(f"{EVENTS}/{posted['paid']}").get_json()["event"]["status"]
         == "processed")
    assert len(sink.wait_for(2)) == 2
    data = api.get(f"{EVENTS}/{posted['paid']}").get_json()
    assert data["event"]["match_round"] == 1
    assert sorted(t["match_round"] for t in data["matches"]) == [0, 1]
    assert sorted(e["match_round"] for e in data["executions"]) == [0, 1]

    then = api.post(f"{EVENTS}/{posted['paid']}/replay", json={"rules": "then"})
    assert then.status_code == 202 and then.get_json()["round"] == 2
    work()
    assert len(sink.wait_for(3)) == 3  # the round-1 rule version ran again
    bad = api.post(f"{EVENTS}/{posted['paid']}/replay", json={"rules": "sometime"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["loc"] == "rules"

    assert api.post(f"{EVENTS}/evt_nope/replay").status_code == 404
