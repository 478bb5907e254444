"""Every error answer is JSON ``{"error": code, "message": sentence}`` — except a 404
asked for by a browser outside the API (``/api/``, ``/hooks/``, ``/inspect/``), which
gets the styled page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, NotFound

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": code, "message": message}), status


MACHINE_PREFIXES = ("/api/", "/hooks/", "/inspect/", "/metrics", "/healthz", "/readyz")


def wants_page() -> bool:
    """A browser asking for a page: HTML preferred to JSON, outside the machine routes."""
    if request.path.startswith(MACHINE_PREFIXES):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes["text/html"] > 0


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if exc.code == 404 and wants_page():
            message = exc.description if exc.description != NotFound.description else ""
            return render_template("not_found.html", message=message), 404
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            code = "too_large"
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an internal error occurred; see the logs")
