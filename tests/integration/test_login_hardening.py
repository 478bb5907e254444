"""Login hardening (issue 12, items 7 and 8): the login throttle with back-off, session
cookie attributes, server-side logout, and the security headers on UI pages."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import USER_EMAIL, USER_PASSWORD

FAST = {"account": {"limit": 5, "window_s": 60, "base_s": 2, "max_s": 60},
        "address": {"limit": 8, "window_s": 60, "base_s": 2, "max_s": 60}}


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def attempt(client, email: str, password: str, addr: str = "10.0.0.1"):  # type: ignore[no-untyped-def]
    env = {"REMOTE_ADDR": addr}
    token = csrf_from(client.get("/login", environ_base=env).get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token}, environ_base=env)


@pytest.fixture
def fast(app):  # type: ignore[no-untyped-def]
    app.config["LOGIN_THROTTLE"] = FAST
    return app


# -- item 7: throttling ------------------------------------------------------------------
def test_wrong_passwords_end_in_429_and_the_right_one_waits_for_the_back_off(  # type: ignore[no-untyped-def]
        fast, client, rt, user, caplog):
    statuses = [attempt(client, USER_EMAIL, "wrong password").status_code for _ in range(4)]
    assert statuses == [401] * 4
    locked = attempt(client, USER_EMAIL, "wrong password")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) == 2
    page = locked.get_data(as_text=True)
    assert "Too many failed logins" in page and 'id="login-throttled"' in page
    # the right password is refused too while the back-off runs (from any address)
    right = attempt(client, USER_EMAIL, USER_PASSWORD, addr="10.9.9.9")
    assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1
    assert "login throttled: account locked" in caplog.text
    # another account on the same address is unaffected
    other = rt.accounts.create_user("bob@example.test", "another long password")
    assert other
    assert attempt(client, "bob@example.test", "another long password").status_code == 302
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/login").get_data(
        as_text=True))})
    # after the back-off, one more failure doubles it
    time.sleep(2.1)
    again = attempt(client, USER_EMAIL, "wrong password", addr="10.9.9.9")
    assert again.status_code == 429 and int(again.headers["Retry-After"]) == 4
    time.sleep(4.1)
    ok = attempt(client, USER_EMAIL, USER_PASSWORD, addr="10.9.9.9")
    assert ok.status_code == 302 and ok.headers["Location"] == "/"
    # counted for /metrics
    metrics = client.get("/metrics").get_data(as_text=True)
    assert re.search(r"^hookwise_login_throttled_total [1-9]", metrics, re.M), metrics
    assert re.search(r"^hookwise_login_failures_total 6", metrics, re.M), metrics


def test_an_address_guessing_many_accounts_is_throttled_and_others_are_not(  # type: ignore[no-untyped-def]
        fast, client, user):
    statuses = [attempt(client, f"guess{i}@example.test", "x" * 10, addr="10.6.6.6").status_code
                for i in range(8)]
    assert statuses == [401] * 7 + [429]
    assert attempt(client, USER_EMAIL, USER_PASSWORD, addr="10.6.6.6").status_code == 429
    assert attempt(client, USER_EMAIL, USER_PASSWORD, addr="10.7.7.7").status_code == 302


def test_the_default_limits_throttle_a_burst_of_forty(client, user):  # type: ignore[no-untyped-def]
    statuses = [attempt(client, USER_EMAIL, "wrong password").status_code for _ in range(40)]
    assert statuses[:4] == [401] * 4 and set(statuses[4:]) == {429}
    resp = attempt(client, USER_EMAIL, USER_PASSWORD)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 25


# -- item 8: sessions and headers -------------------------------------------------------
def session_cookie(resp) -> str:  # type: ignore[no-untyped-def]
    cookies = [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, resp.headers
    return cookies[-1]


def replay(app, cookie: str):  # type: ignore[no-untyped-def]
    """A fresh client (another machine) sending a captured ``session=…`` cookie."""
    c = app.test_client()
    c.set_cookie("session", cookie.split("=", 1)[1], domain="localhost")
    return c


def test_the_session_cookie_is_httponly_samesite_lax_and_secure_when_asked(app, client, user):  # type: ignore[no-untyped-def]
    cookie = session_cookie(attempt(client, USER_EMAIL, USER_PASSWORD))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = app.test_client()
    https = "https://localhost"
    token = csrf_from(secure.get("/login", base_url=https).get_data(as_text=True))
    cookie = session_cookie(secure.post("/login", base_url=https, data={
        "email": USER_EMAIL, "password": USER_PASSWORD, "csrf_token": token}))
    assert "Secure" in cookie and "SameSite=Lax" in cookie  # an https request
    app.config["SESSION_COOKIE_SECURE"] = True
    cookie = session_cookie(attempt(app.test_client(), USER_EMAIL, USER_PASSWORD))
    assert "Secure" in cookie  # configured (HOOKWISE_COOKIE_SECURE=1), over plain http


def test_the_cookie_setting_is_read_from_the_environment(rt, monkeypatch):  # type: ignore[no-untyped-def]
    from web import create_app

    monkeypatch.setenv("HOOKWISE_COOKIE_SECURE", "true")
    assert create_app(runtime=rt).config["SESSION_COOKIE_SECURE"] is True
    monkeypatch.setenv("HOOKWISE_COOKIE_SECURE", "0")
    assert create_app(runtime=rt).config["SESSION_COOKIE_SECURE"] is False


def test_a_cookie_captured_before_logout_is_refused_after_it(app, client, user):  # type: ignore[no-untyped-def]
    cookie = session_cookie(attempt(client, USER_EMAIL, USER_PASSWORD)).split(";")[0]
    assert client.get("/").status_code == 200
    assert replay(app, cookie).get("/").status_code == 200  # a replay works before logout
    other_browser = app.test_client()
    other = session_cookie(attempt(other_browser, USER_EMAIL, USER_PASSWORD)).split(";")[0]
    token = csrf_from(client.get("/rules").get_data(as_text=True).replace(
        'name="csrf-token" content=', 'name="csrf_token" value='))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    resp = replay(app, cookie).get("/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert replay(app, cookie).get("/api/v1/rules").status_code == 401
    # the other browser's session is its own, and still works
    assert replay(app, other).get("/").status_code == 200


def test_a_password_change_and_end_sessions_log_out_everywhere(app, client, rt, user):  # type: ignore[no-untyped-def]
    from engine.store.accounts import hash_password
    from engine.store.db import session_scope
    from engine.store.models import User

    cookie = session_cookie(attempt(client, USER_EMAIL, USER_PASSWORD)).split(";")[0]
    assert replay(app, cookie).get("/").status_code == 200
    with session_scope(rt.db) as s:
        row = s.get(User, user.id)
        row.password_hash = hash_password("a brand new password")
        s.add(row)
    assert replay(app, cookie).get("/").status_code == 302
    cookie = session_cookie(attempt(client, USER_EMAIL, "a brand new password")).split(";")[0]
    with app.app_context():
        from web.auth import end_sessions

        end_sessions(user.id)
    assert replay(app, cookie).get("/").status_code == 302


def test_hookwise_user_password_ends_the_open_sessions(app, client, env, user):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from cli.main import main

    cookie = session_cookie(attempt(client, USER_EMAIL, USER_PASSWORD)).split(";")[0]
    assert replay(app, cookie).get("/").status_code == 200
    runner = CliRunner(env=env)
    short = runner.invoke(main, ["user", "password", USER_EMAIL, "--password", "short"])
    assert short.exit_code != 0 and "at least" in short.output
    assert replay(app, cookie).get("/").status_code == 200  # a refused change ends nothing
    unknown = runner.invoke(main, ["user", "password", "nobody@example.org",
                                   "--password", "a long new password"])
    assert unknown.exit_code != 0 and "no user nobody@example.org" in unknown.output
    done = runner.invoke(main, ["user", "password", USER_EMAIL.upper(),
                                "--password", "a long new password"])
    assert done.exit_code == 0, done.output
    assert replay(app, cookie).get("/").status_code == 302
    assert attempt(app.test_client(), USER_EMAIL, USER_PASSWORD).status_code == 401
    assert attempt(app.test_client(), USER_EMAIL, "a long new password").status_code == 302


HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin"}


@pytest.mark.parametrize("path", ["/login", "/", "/rules", "/rules/new", "/sources",
                                  "/sources/new", "/events", "/secrets", "/nope"])
def test_security_headers_on_ui_pages(client, user, path) -> None:  # type: ignore[no-untyped-def]
    attempt(client, USER_EMAIL, USER_PASSWORD)
    resp = client.get(path)
    assert resp.status_code in (200, 404), (path, resp.status_code)
    for name, value in HEADERS.items():
        assert resp.headers.get(name) == value, (path, name)
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert not re.search(r'\sstyle="', resp.get_data(as_text=True)), path
