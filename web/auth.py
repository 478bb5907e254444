"""Who may do what: a login session (UI) or a bearer token (API) on every route but the
public ones; CSRF on every state-changing request made with a session.

Public: ``/hooks/*``, ``/healthz``, ``/readyz``, ``/login``, ``/setup``, static files.
API requests with ``Authorization: Bearer hw_…`` are exempt from CSRF (no cookie is
involved); browser requests send the token from the page (form field ``csrf_token`` or
header ``X-CSRFToken``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import NullSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from engine.errors import AccountError
from engine.store.accounts import check_setup_token, consume_setup_token
from web.context import runtime
from web.errors import error_response

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()

PUBLIC_ENDPOINTS = {"auth.login", "auth.setup", "static", "health.healthz", "health.readyz"}
PUBLIC_BLUEPRINTS = {"ingest"}
MACHINE_PATHS = ("/api/", "/metrics")  # answered 401 JSON, never redirected to /login


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


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in _guard, below
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    csrf.init_app(app)
    app.before_request(_guard)
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


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    rt = runtime()
    if request.method == "POST":
        csrf.protect()
        user = rt.accounts.authenticate(request.form.get("email", ""),
                                        request.form.get("password", ""))
        if user is not None:
            session.clear()
            session["user_id"] = user.id
            session.permanent = True
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong email or password.", "error")
        return render_template("login.html", email=request.form.get("email", "")), 401
    if not rt.accounts.has_users():
        return render_template("login.html", no_users=True)
    return render_template("login.html")


@bp.post("/logout")
def logout() -> Response:
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
        session.clear()
        session["user_id"] = user.id
        return redirect(url_for("ui.dashboard"))
    return render_template("setup.html", token=token)
