"""The built-in request inspector: ``/inspect/<name>`` (public, any method) records what it
receives and answers 200; ``/inspector`` and ``/inspector/<name>`` (logged in) show it.

A target that works on every machine, offline included: the walkthrough's rule and the
builder's first rule send to it. Outgoing steps may reach this instance's own inspector
without HOOKWISE_EGRESS_ALLOW (``engine.outbound.instance.is_own_inspector``: that path only).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response

from engine.outbound.instance import INSPECT_NAME
from engine.store import inspector
from web.context import runtime
from web.ui import bp

receiver = Blueprint("inspect_in", __name__)  # public (web.auth.PUBLIC_BLUEPRINTS)
NAME = re.compile(rf"^{INSPECT_NAME}$")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def inspector_url(name: str) -> str:
    return url_for("inspect_in.receive", name=name, _external=True)


@receiver.route("/inspect/<name>", methods=METHODS)
def receive(name: str) -> tuple[Response, int]:
    if not NAME.match(name):
        return jsonify({"error": "bad_name", "message": "an inspector name is letters, digits, "
                        "- and _ (up to 64), starting with a letter or digit"}), 404
    headers = {k.lower(): v for k, v in request.headers.items()}
    rid = inspector.record(
        runtime().db, name, method=request.method, content_type=request.content_type or "",
        headers=headers, query=request.args.to_dict(flat=True),
        body=request.get_data(cache=False), remote_addr=request.remote_addr)
    return jsonify({"ok": True, "name": name, "request": rid,
                    "see": url_for("ui.inspector_page", name=name, _external=True)}), 200


@bp.record_once
def _register_receiver(state: BlueprintSetupState) -> None:
    state.app.register_blueprint(receiver)


@bp.get("/inspector")
def inspector_index() -> Any:
    wanted = (request.args.get("name") or "").strip()
    if wanted and NAME.match(wanted):
        return redirect(url_for("ui.inspector_page", name=wanted))
    return render_template("inspector.html", name=None, names=inspector.names(runtime().db),
                           items=[], url=inspector_url("demo"),
                           error="Letters, digits, - and _ only." if wanted else None)


@bp.get("/inspector/<name>")
def inspector_page(name: str) -> Any:
    if not NAME.match(name):
        abort(404, f"“{name}” is not an inspector name (letters, digits, - and _).")
    return _page(name)


def _page(name: str) -> str:
    db = runtime().db
    return render_template("inspector.html", name=name, names=inspector.names(db),
                           items=inspector.requests(db, name), url=inspector_url(name),
                           error=None)
