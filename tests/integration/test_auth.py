"""Access: login sessions, the one-time setup link, bearer tokens, CSRF."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from cli.main import main
from engine.errors import AccountError
from engine.store.accounts import check_setup_token, setup_token

PUBLIC = ["/healthz", "/readyz", "/login"]


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def test_pages_need_a_login_and_public_routes_do_not(client, rt) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    api = client.get("/api/v1/rules")
    assert api.status_code == 401 and api.get_json()["error"] == "unauthorized"
    for path in PUBLIC:
        assert client.get(path).status_code in (200, 503), path
    assert client.post("/hooks/nowhere", json={}).status_code == 404  # ingest: no login


def test_login_logout_and_wrong_password(client, rt, user) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/login")
    token = csrf_from(page.get_data(as_text=True))
    bad = client.post("/login", data={"email": "ada@example.test", "password": "nope",
                                      "csrf_token": token})
    assert bad.status_code == 401 and "Wrong email or password" in bad.get_data(as_text=True)
    no_csrf = client.post("/login", data={"email": "ada@example.test",
                                          "password": "correct horse battery"})
    assert no_csrf.status_code in (302, 400) and "/login" not in no_csrf.headers.get(
        "Location", "/login?")  # refused without the CSRF token
    ok = client.post("/login?next=/events", data={
        "email": "ADA@example.test", "password": "correct horse battery", "csrf_token": token})
    assert ok.status_code == 302 and ok.headers["Location"] == "/events"
    assert client.get("/api/v1/rules").status_code != 401  # the session works for the API
    # login starts a new session (no fixation), so forms carry a fresh token
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 200  # the stale token did not log us out
    fresh = csrf_from(client.get("/").get_data(as_text=True))
    assert fresh != token
    assert client.post("/logout", data={"csrf_token": fresh}).status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/x", "//evil.example/x",
                                    "/%5Cevil.example", "/\\evil.example"])
def test_open_redirects_are_refused(client, user, target) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import quote

    token = csrf_from(client.get("/login").get_data(as_text=True))
    resp = client.post(f"/login?next={quote(target, safe='/%')}", data={
        "email": "ada@example.test", "password": "correct horse battery", "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_session_writes_need_csrf_but_bearer_writes_do_not(client, rt, user, api_token):  # type: ignore[no-untyped-def]
    with client.session_transaction() as s:
        s["user_id"] = user.id
    refused = client.put("/api/v1/secrets/X_TOKEN", json={"value": "v"})
    assert refused.status_code == 400 and refused.get_json()["error"] == "csrf_failed"
    accepted = client.put("/api/v1/secrets/X_TOKEN", json={"value": "v"},
                          headers={"Authorization": f"Bearer {api_token}"})
    assert accepted.status_code in (200, 201, 204)


def test_bad_bearer_token_is_401(client, rt) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/api/v1/rules", headers={"Authorization": "Bearer hw_not-a-token"})
    assert resp.status_code == 401 and "not valid" in resp.get_json()["message"]


def test_setup_link_creates_the_first_user_once(client, rt) -> None:  # type: ignore[no-untyped-def]
    token = setup_token(rt.settings.data_dir, create=True)
    assert token and check_setup_token(rt.settings.data_dir, token)
    assert client.get("/setup?token=wrong").status_code == 404
    page = client.get(f"/setup?token={token}")
    assert page.status_code == 200
    csrf = csrf_from(page.get_data(as_text=True))
    mismatch = client.post("/setup", data={"token": token, "email": "root@example.test",
                                           "password": "long enough pw", "confirm": "other",
                                           "csrf_token": csrf})
    assert mismatch.status_code == 400
    done = client.post("/setup", data={"token": token, "email": "root@example.test",
                                       "password": "long enough pw",
                                       "confirm": "long enough pw", "csrf_token": csrf})
    assert done.status_code == 302
    assert rt.accounts.authenticate("root@example.test", "long enough pw") is not None
    assert client.get(f"/setup?token={token}").status_code == 404  # used up


def test_accounts_rules(rt) -> None:  # type: ignore[no-untyped-def]
    rt.accounts.create_user("a@b.test", "12345678")
    with pytest.raises(AccountError, match="exists"):
        rt.accounts.create_user("A@B.test", "12345678")
    with pytest.raises(AccountError, match="at least"):
        rt.accounts.create_user("c@d.test", "short")
    with pytest.raises(AccountError, match="not an email"):
        rt.accounts.create_user("nobody", "12345678")
    tok = rt.accounts.create_token("ci")
    assert rt.accounts.verify_token(tok).name == "ci"
    assert rt.accounts.verify_token(tok + "x") is None
    assert all(tok not in t.token_hash for t in rt.accounts.list_tokens())  # only a hash


def test_cli_user_and_token(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for key in ("HOOKWISE_DATABASE_URL", "HOOKWISE_REDIS_URL", "HOOKWISE_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOOKWISE_DATA_DIR", str(tmp_path))
    r = CliRunner()
    made = r.invoke(main, ["user", "create", "Ops@Example.test"],
                    input="a long password\na long password\n")
    assert made.exit_code == 0 and "ops@example.test created" in made.output
    again = r.invoke(main, ["user", "create", "ops@example.test", "--password", "whatever1"])
    assert again.exit_code == 2 and "exists" in again.output
    tok = r.invoke(main, ["token", "create", "deploy"])
    assert tok.exit_code == 0 and tok.output.strip().startswith("hw_")

    listed = r.invoke(main, ["token", "list"])
    assert listed.exit_code == 0 and listed.output.startswith("deploy\t")
    assert "last used never" in listed.output
    assert tok.output.strip() not in listed.output  # only its first characters
    assert tok.output.strip()[:10] in listed.output
    revoked = r.invoke(main, ["token", "revoke", "deploy"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert r.invoke(main, ["token", "list"]).output == ""
    gone = r.invoke(main, ["token", "revoke", "deploy"])
    assert gone.exit_code == 2 and "no token named 'deploy'" in gone.output
