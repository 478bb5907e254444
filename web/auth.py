"""Who may do what: a login session (UI) or a bearer token (API) on every route but the
public ones; CSRF on every state-changing request made with a session.

Public: ``/hooks/*``, ``/inspect/*`` (the request inspector), ``/healthz``, ``/readyz``,
``/login``, ``/setup``, static files.
API requests with ``Authorization: Bearer hw_…`` are exempt from CSRF (no cookie is
involved); browser requests send the token from the page (form field ``csrf_token`` or
header ``X-CSRFToken``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
from typing import Any
from urllib.parse import urlparse

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import NullSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from redis.exceptions import RedisError

from engine.errors import AccountError
from engine.store.accounts import check_setup_token, consume_setup_token
from engine.store.models import User
from web.context import runtime
from web.errors import error_response
from web.throttle import LoginThrottle

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()

PUBLIC_ENDPOINTS = {"auth.login", "auth.setup", "static", "health.healthz", "health.readyz"}
PUBLIC_BLUEPRINTS = {"ingest", "inspect_in"}  # inspect_in: web.ui.inspect
MACHINE_PATHS = ("/api/", "/metrics")  # answered 401 JSON, never redirected to /login

# Server-side session state in Redis (shared by every web process):
#   SESSION_KEY: one key per login, holding the user id; logout deletes it, so a cookie
#                copied before logout is refused after it.
#   EPOCH_KEY:   a per-user generation stored in each session at login; end_sessions()
#                bumps it (logs the user out everywhere).
# A session also carries a fingerprint of the password hash: changing the password (by
# any means) ends every session made with the old one.
SESSION_KEY = "hookwise:session:{}"
EPOCH_KEY = "hookwise:session-epoch:{}"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, not opened for webhooks: senders carry no cookie,
    and ingest is the hot path (this saves a serializer and a cookie parse per call)."""

    def open_session(self, app: Flask, request: Any) -> Any:
        if request.path.startswith("/hooks/"):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if isinstance(session, NullSession):
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when configured (``HOOKWISE_COOKIE_SECURE``) or the request is https."""
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        return has_request_context() and request.is_secure


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in _guard, below
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # Flask's defaults hold these keys already (None/False): set them, not setdefault.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = _truthy(os.environ.get("HOOKWISE_COOKIE_SECURE"))
    csrf.init_app(app)
    app.before_request(_guard)
    app.after_request(_security_headers)
    app.register_blueprint(bp)

    @app.errorhandler(CSRFError)
    def _csrf_failed(exc: CSRFError) -> Any:
        if request.path.startswith("/api/"):
            return error_response(400, "csrf_failed", f"CSRF check failed: {exc.description}")
        flash("Your form expired or was sent from elsewhere; please try again.", "error")
        return redirect(request.referrer or url_for("ui.dashboard"))


def _guard() -> Any:
    endpoint = request.endpoint or ""
    if endpoint in PUBLIC_ENDPOINTS or request.blueprint in PUBLIC_BLUEPRINTS:
        return None
    if request.path.startswith("/static/"):
        return None
    rt = runtime()
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        token = rt.accounts.verify_token(auth[7:].strip())
        if token is None:
            return error_response(401, "unauthorized", "the bearer token is not valid")
        g.principal = f"token:{token.name}"
        return None  # no cookie involved: no CSRF check
    user_id = session.get("user_id")
    user = rt.accounts.get_user(user_id) if user_id else None
    if user is not None and not _session_valid(user):
        session.clear()
        user = None
    if user is None:
        if request.path.startswith(MACHINE_PATHS):
            return error_response(401, "unauthorized",
                                  "log in or send 'Authorization: Bearer <token>'")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    g.principal = f"user:{user.email}"
    g.user = user
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
    return None


def _safe_next(target: str | None) -> str:
    # "/\\evil.example" and "//evil.example" are read by browsers as another host
    if (target and target.startswith("/") and not target.startswith("//")
            and "\\" not in target and not urlparse(target).netloc):
        return target
    return url_for("ui.dashboard")


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _password_mark(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _session_lifetime_s() -> int:
    from flask import current_app

    return max(1, int(current_app.permanent_session_lifetime.total_seconds()))


def _start_session(user: User) -> None:
    """A fresh session (no fixation) registered in Redis."""
    rt = runtime()
    sid = secrets.token_urlsafe(24)
    try:
        with rt.redis.pipeline() as pipe:
            pipe.set(SESSION_KEY.format(sid), str(user.id), ex=_session_lifetime_s())
            pipe.get(EPOCH_KEY.format(user.id))
            _, epoch = pipe.execute()
    except RedisError as exc:  # the UI stays usable (it says Redis is down); see below
        log.warning("session for user %s not registered: Redis unreachable (%s)", user.id, exc)
        epoch = None
    session.clear()
    session["user_id"] = user.id
    session["sid"] = sid
    session["ep"] = int(epoch or 0)
    session["pw"] = _password_mark(user)
    session.permanent = True


def _session_valid(user: User) -> bool:
    """The session was not logged out, and neither its epoch nor the password changed.

    Sessions without a ``sid`` (made before server-side sessions) are held to the epoch
    only; logging one out bumps the epoch. While Redis is unreachable only the password
    fingerprint is checked (the UI must still load to say that Redis is down); once Redis
    answers again, logged-out sessions are refused again."""
    rt = runtime()
    if "pw" in session and session["pw"] != _password_mark(user):
        return False
    sid = session.get("sid")
    try:
        with rt.redis.pipeline() as pipe:
            pipe.get(EPOCH_KEY.format(user.id))
            if sid:
                pipe.get(SESSION_KEY.format(sid))
                pipe.expire(SESSION_KEY.format(sid), _session_lifetime_s())
            answers = pipe.execute()
    except RedisError as exc:
        log.warning("session not checked against Redis (unreachable: %s)", exc)
        return True
    if int(answers[0] or 0) != session.get("ep", 0):
        return False
    if sid:
        owner = answers[1]
        return owner is not None and owner.decode() == str(user.id)
    return True


def end_sessions(user_id: int) -> None:
    """Log a user out everywhere (call it after a password change made elsewhere, too:
    sessions also end by themselves when the password hash changes)."""
    runtime().redis.incr(EPOCH_KEY.format(user_id))


def _client_address() -> str:
    return request.remote_addr or ""


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    rt = runtime()
    if request.method == "POST":
        csrf.protect()
        email = request.form.get("email", "")
        address = _client_address()
        throttle = LoginThrottle(rt.redis)
        lock = throttle.locked(email, address)  # None too when Redis is unreachable
        if lock is None:
            user = rt.accounts.authenticate(email, request.form.get("password", ""))
            if user is not None:
                throttle.succeeded(email)
                _start_session(user)
                return redirect(_safe_next(request.args.get("next")))
            lock = throttle.failed(email, address)
            if lock is None:
                flash("Wrong email or password.", "error")
                return render_template("login.html", email=email), 401
        throttle.refused(email, address, lock)
        flash(f"Too many failed logins. Wait {_duration(lock.retry_after)} and try again.",
              "error")
        resp = Response(render_template("login.html", email=email, retry_after=lock.retry_after),
                        status=429)
        resp.headers["Retry-After"] = str(lock.retry_after)
        return resp
    if not rt.accounts.has_users():
        return render_template("login.html", no_users=True)
    return render_template("login.html")


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"


@bp.post("/logout")
def logout() -> Response:
    sid = session.get("sid")
    user_id = session.get("user_id")
    try:
        if sid:
            runtime().redis.delete(SESSION_KEY.format(sid))
        elif user_id:
            end_sessions(user_id)  # no server-side id to forget: end them all
    except RedisError as exc:
        log.error("logout could not end the session server-side (Redis: %s)", exc)
    session.clear()
    return redirect(url_for("auth.login"))  # type: ignore[return-value]


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> Any:
    """Create the first user with the one-time link that ``hookwise serve`` printed."""
    rt = runtime()
    token = request.values.get("token", "")
    if rt.accounts.has_users() or not check_setup_token(rt.settings.data_dir, token):
        return render_template("setup.html", invalid=True), 404
    if request.method == "POST":
        csrf.protect()
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            flash("The two passwords differ.", "error")
            return render_template("setup.html", token=token,
                                   email=request.form.get("email", "")), 400
        try:
            user = rt.accounts.create_user(request.form.get("email", ""), password)
        except AccountError as exc:
            flash(str(exc), "error")
            return render_template("setup.html", token=token,
                                   email=request.form.get("email", "")), 400
        consume_setup_token(rt.settings.data_dir)
        _start_session(user)
        return redirect(url_for("ui.dashboard"))
    return render_template("setup.html", token=token)
