"""/api/v1/sources: CRUD by slug, validation in the rule-builder shape, ingest URLs."""

from __future__ import annotations

SOURCES = "/api/v1/sources"


def test_source_crud_round_trip(api, client):  # type: ignore[no-untyped-def]
    resp = api.post(SOURCES, json={"slug": "shop", "dedup": {"path": "$.body.id"}})
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    assert created["slug"] == "shop"
    assert created["dedup"] == {"path": "$.body.id"}
    assert created["ingest_url"] == "http://localhost/hooks/shop"
    assert created["created_at"] and created["updated_at"]
    assert resp.headers["Location"] == f"{SOURCES}/shop"

    again = api.post(SOURCES, json={"slug": "shop"})
    assert again.status_code == 409
    assert again.get_json()["error"] == "conflict"

    # the new source receives webhooks at once
    hook = client.post("/hooks/shop", json={"id": "o-1"})
    assert hook.status_code == 202, hook.get_json()

    listed = api.get(SOURCES).get_json()
    assert [s["slug"] for s in listed["items"]] == ["shop"]
    assert listed["total"] == 1 and listed["next_offset"] is None
    assert api.get(f"{SOURCES}/shop").get_json() == listed["items"][0]

    put = api.put(f"{SOURCES}/shop", json={"verify": {"scheme": "token", "secret": "SHOP_TOKEN"}})
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["verify"] == {"scheme": "token", "secret": "SHOP_TOKEN"}
    assert "dedup" not in put.get_json()  # PUT replaces the whole document
    assert client.post("/hooks/shop", json={"id": "o-2"}).status_code == 401

    new = api.put(f"{SOURCES}/crm", json={"slug": "crm", "description": "leads"})
    assert new.status_code == 201
    assert new.get_json()["ingest_url"] == "http://localhost/hooks/crm"

    assert api.delete(f"{SOURCES}/shop").status_code == 204
    assert api.get(f"{SOURCES}/shop").status_code == 404
    gone = api.delete(f"{SOURCES}/shop")
    assert gone.status_code == 404
    assert gone.get_json() == {"error": "not_found", "message": "source 'shop' does not exist"}
    assert [s["slug"] for s in api.get(SOURCES).get_json()["items"]] == ["crm"]


def test_invalid_sources_answer_located_errors(api):  # type: ignore[no-untyped-def]
    resp = api.post(SOURCES, json={"slug": "Bad Slug", "verify": {"scheme": "hmac"},
                                   "colour": "red"})
    assert resp.status_code == 422
    data = resp.get_json()
    assert data["error"] == "validation_failed"
    assert data["message"].startswith("the request is invalid: ")
    by_loc = {e["loc"]: e for e in data["errors"]}
    assert set(by_loc) == {"slug", "verify", "colour"}
    assert by_loc["slug"]["value"] == "Bad Slug"
    assert "lowercase" in by_loc["slug"]["message"]
    assert "secret" in by_loc["verify"]["message"]
    assert by_loc["colour"]["message"] == "unknown field 'colour'"
    assert all(set(e) == {"loc", "message", "value"} for e in data["errors"])

    mismatch = api.put(f"{SOURCES}/shop", json={"slug": "other"})
    assert mismatch.status_code == 422
    assert mismatch.get_json()["errors"][0]["loc"] == "slug"

    not_object = api.post(SOURCES, json=["shop"])
    assert not_object.status_code == 422
    assert api.get(SOURCES).get_json()["total"] == 0


def test_a_source_in_use_cannot_be_deleted(api):  # type: ignore[no-untyped-def]
    api.post(SOURCES, json={"slug": "shop"})
    for name in ("b-rule", "a-rule"):
        resp = api.post("/api/v1/rules", json={
            "name": name, "source": "shop",
            "actions": [{"type": "delay", "seconds": 1}]})
        assert resp.status_code == 201, resp.get_json()
    resp = api.delete(f"{SOURCES}/shop")
    assert resp.status_code == 409
    assert resp.get_json()["error"] == "conflict"
    assert "a-rule, b-rule" in resp.get_json()["message"]
    assert api.get(f"{SOURCES}/shop").status_code == 200


def test_source_list_pages(api):  # type: ignore[no-untyped-def]
    for slug in ("a", "b", "c"):
        api.post(SOURCES, json={"slug": slug})
    first = api.get(f"{SOURCES}?limit=2").get_json()
    assert [s["slug"] for s in first["items"]] == ["a", "b"]
    assert (first["total"], first["limit"], first["next_offset"]) == (3, 2, 2)
    rest = api.get(f"{SOURCES}?limit=2&offset=2").get_json()
    assert [s["slug"] for s in rest["items"]] == ["c"] and rest["next_offset"] is None
    bad = api.get(f"{SOURCES}?limit=zero")
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["loc"] == "limit"
