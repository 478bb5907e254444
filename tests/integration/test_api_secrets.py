"""/api/v1/secrets: names and timestamps only; values are write-only everywhere."""

from __future__ import annotations

import re

from tests.servers import Reply

SECRETS = "/api/v1/secrets"
VALUE = "s3cr3t-value-never-shown"


def test_secret_round_trip_never_answers_values(api, rt):  # type: ignore[no-untyped-def]
    bodies = []
    resp = api.put(f"{SECRETS}/CHAT_TOKEN", json={"value": VALUE})
    assert resp.status_code == 204 and resp.get_data() == b""
    assert rt.secrets.get("CHAT_TOKEN") == VALUE
    assert api.put(f"{SECRETS}/A_FIRST", json={"value": "x" * 8}).status_code == 204

    listed = api.get(SECRETS)
    bodies.append(listed.get_data(as_text=True))
    items = listed.get_json()["items"]
    assert [i["name"] for i in items] == ["A_FIRST", "CHAT_TOKEN"]
    assert all(set(i) == {"name", "created_at", "updated_at"} for i in items)
    first_update = items[1]["updated_at"]

    assert api.put(f"{SECRETS}/CHAT_TOKEN", json={"value": VALUE + "2"}).status_code == 204
    assert rt.secrets.get("CHAT_TOKEN") == VALUE + "2"
    again = api.get(SECRETS)
    bodies.append(again.get_data(as_text=True))
    assert again.get_json()["items"][1]["updated_at"] >= first_update
    assert again.get_json()["total"] == 2

    assert api.delete(f"{SECRETS}/CHAT_TOKEN").status_code == 204
    gone = api.delete(f"{SECRETS}/CHAT_TOKEN")
    assert gone.status_code == 404 and gone.get_json()["error"] == "not_found"
    assert [i["name"] for i in api.get(SECRETS).get_json()["items"]] == ["A_FIRST"]
    assert not any(VALUE in b for b in bodies)


def test_bad_secret_requests(api):  # type: ignore[no-untyped-def]
    bad_name = api.put(f"{SECRETS}/not-a-name", json={"value": "v"})
    assert bad_name.status_code == 422
    assert bad_name.get_json()["errors"][0]["loc"] == "name"
    for payload in ({}, {"value": 3}, {"value": "v", "extra": 1}):
        resp = api.put(f"{SECRETS}/OK", json=payload)
        assert resp.status_code == 422, payload
        assert resp.get_json()["error"] == "validation_failed"
    assert api.put(f"{SECRETS}/OK", data="nope", content_type="text/plain").status_code == 400
    assert api.get(SECRETS).get_json()["total"] == 0


def test_empty_and_whitespace_secrets_are_refused(api, rt):  # type: ignore[no-untyped-def]
    """Issue 12, item 6: an empty key would make any signature made with it genuine."""
    assert api.put(f"{SECRETS}/KEPT", json={"value": "the-real-key"}).status_code == 204
    for blank, why in (("", "is empty"), (" ", "only whitespace"), ("\t\n  ", "only whitespace")):
        for name in ("NEW", "KEPT"):
            resp = api.put(f"{SECRETS}/{name}", json={"value": blank})
            assert resp.status_code == 422, (name, blank)
            body = resp.get_json()
            assert body["error"] == "validation_failed"
            assert body["errors"][0]["loc"] == "value"
            assert why in body["errors"][0]["message"] and why in body["message"]
    assert rt.secrets.names() == ["KEPT"] and rt.secrets.get("KEPT") == "the-real-key"


def test_secret_values_stay_out_of_runs_and_previews(api, client, work, sink):  # type: ignore[no-untyped-def]
    sink.respond("/hook", Reply(status=200, json={"echo": VALUE}))
    api.put(f"{SECRETS}/TOKEN", json={"value": VALUE})
    api.put(f"{SECRETS}/SINK", json={"value": sink.url})
    api.post("/api/v1/sources", json={"slug": "shop"})
    rule = {"name": "send", "source": "shop", "actions": [{
        "id": "call", "type": "webhook", "url": "{{ secrets.SINK }}/hook",
        "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
        "json": {"token": "{{ secrets.TOKEN }}"}}]}
    assert api.post("/api/v1/rules", json=rule).status_code == 201
    event_id = client.post("/hooks/shop", json={"n": 1}).get_json()["event_id"]
    work(until=lambda: api.get("/api/v1/executions?status=succeeded").get_json()["total"])
    [req] = sink.wait_for(1)
    assert req.headers["authorization"] == f"Bearer {VALUE}"  # the real call had it

    answers = [
        api.get(f"/api/v1/events/{event_id}"),
        api.get(f"/api/v1/executions?event_id={event_id}"),
        api.post("/api/v1/rules/test", json={"rule": rule, "event_id": event_id}),
        api.get("/api/v1/rules/send"),
        api.get(SECRETS),
    ]
    [ex] = answers[1].get_json()["items"]
    answers.append(api.get(f"/api/v1/executions/{ex['id']}"))
    assert answers[-1].get_json()["status"] == "succeeded"
    for resp in answers:
        assert resp.status_code == 200
        text = resp.get_data(as_text=True)
        assert VALUE not in text, resp.request.path
    assert re.search(r"redacted", answers[-1].get_data(as_text=True))
