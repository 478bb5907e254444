"""/api/v1/tokens (issue 12, item 13): list without the token, create once, revoke at once."""

from __future__ import annotations

TOKENS = "/api/v1/tokens"


def test_list_create_use_and_revoke(api, client, rt):  # type: ignore[no-untyped-def]
    created = api.post(TOKENS, json={"name": "ci"})
    assert created.status_code == 201
    token = created.get_json()["token"]
    assert token.startswith("hw_") and created.get_json()["name"] == "ci"

    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/rules", headers=bearer).status_code == 200

    listed = api.get(TOKENS)
    body = listed.get_data(as_text=True)
    items = {i["name"]: i for i in listed.get_json()["items"]}
    assert set(items) == {"ci", "tests"}
    assert set(items["ci"]) == {"name", "prefix", "created_at", "last_used_at"}
    assert token.startswith(items["ci"]["prefix"]) and token not in body
    assert listed.get_json()["total"] == 2

    assert api.post(TOKENS, json={"name": "ci"}).status_code == 409
    blank = api.post(TOKENS, json={"name": "  "})
    assert blank.status_code == 422 and "name" in blank.get_data(as_text=True)

    assert api.delete(f"{TOKENS}/ci").status_code == 204
    after = client.get("/api/v1/rules", headers=bearer)
    assert after.status_code == 401  # at once: the very next request
    missing = api.delete(f"{TOKENS}/ci")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert [i["name"] for i in api.get(TOKENS).get_json()["items"]] == ["tests"]


def test_tokens_need_auth(client, rt):  # type: ignore[no-untyped-def]
    assert client.get(TOKENS).status_code == 401
    assert client.post(TOKENS, json={"name": "x"}).status_code == 401
