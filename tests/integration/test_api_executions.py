"""/api/v1/executions: list, get with steps, retry a failed one from its failed step."""

from __future__ import annotations

import pytest

from tests.servers import Reply

EXECUTIONS = "/api/v1/executions"


@pytest.fixture
def failed(api, client, work, sink):  # type: ignore[no-untyped-def]
    """An execution whose first step succeeded and whose second got a 404."""
    sink.respond("/first", Reply(status=200, json={"n": 1}))
    sink.respond("/second", Reply(status=404))
    api.post("/api/v1/sources", json={"slug": "shop"})
    rule = {"name": "two-calls", "source": "shop", "actions": [
        {"id": "first", "type": "webhook", "url": f"{sink.url}/first"},
        {"id": "second", "type": "webhook", "url": f"{sink.url}/second",
         "json": {"n": "{{ steps.first.json.n }}"}}]}
    assert api.post("/api/v1/rules", json=rule).status_code == 201
    event_id = client.post("/hooks/shop", json={"id": 1}).get_json()["event_id"]
    work(until=lambda: api.get(f"{EXECUTIONS}?status=failed").get_json()["total"] == 1)
    [ex] = api.get(f"{EXECUTIONS}?event_id={event_id}").get_json()["items"]
    assert ex["status"] == "failed", ex
    return ex


def paths(sink):  # type: ignore[no-untyped-def]
    return [r.path for r in sink.requests]


def test_list_and_get_executions(api, failed):  # type: ignore[no-untyped-def]
    page = api.get(EXECUTIONS).get_json()
    assert page["total"] == 1 and page["next_offset"] is None
    assert page["items"][0]["id"] == failed["id"]
    assert "steps" not in page["items"][0]
    assert api.get(f"{EXECUTIONS}?status=failed").get_json()["total"] == 1
    assert api.get(f"{EXECUTIONS}?status=succeeded").get_json()["total"] == 0
    assert api.get(f"{EXECUTIONS}?rule=two-calls").get_json()["total"] == 1
    assert api.get(f"{EXECUTIONS}?rule=other").get_json()["total"] == 0
    assert api.get(f"{EXECUTIONS}?event_id=evt_nope").get_json()["total"] == 0
    bad = api.get(f"{EXECUTIONS}?status=exploded")
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["loc"] == "status"

    detail = api.get(f"{EXECUTIONS}/{failed['id']}").get_json()
    assert detail["rule_name"] == "two-calls" and detail["error"]
    first, second = detail["steps"]
    assert (first["step_id"], first["status"], first["attempts"]) == ("first", "succeeded", 1)
    assert first["output"]["status"] == 200
    assert (second["step_id"], second["status"]) == ("second", "failed")
    assert "404" in second["error"]
    assert second["rendered"]["json"] == {"n": 1}

    missing = api.get(f"{EXECUTIONS}/exe_nope")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_retry_resumes_at_the_failed_step(api, failed, work, sink):  # type: ignore[no-untyped-def]
    assert paths(sink) == ["/first", "/second"]
    sink.respond("/second", Reply(status=200, json={"ok": True}))

    resp = api.post(f"{EXECUTIONS}/{failed['id']}/retry")
    assert resp.status_code == 202
    assert resp.get_json() == {"execution_id": failed["id"], "status": "pending"}
    work(until=lambda: api.get(f"{EXECUTIONS}/{failed['id']}").get_json()["status"]
         == "succeeded")
    assert paths(sink) == ["/first", "/second", "/second"]  # /first was not repeated
    steps = api.get(f"{EXECUTIONS}/{failed['id']}").get_json()["steps"]
    assert [s["status"] for s in steps] == ["succeeded", "succeeded"]

    again = api.post(f"{EXECUTIONS}/{failed['id']}/retry")
    assert again.status_code == 409
    assert again.get_json()["error"] == "conflict" and "succeeded" in again.get_json()["message"]
    assert api.post(f"{EXECUTIONS}/exe_nope/retry").status_code == 404
