"""``POST /hooks/<source>``: the WSGI request → ``engine.ingress.ingest`` → the WSGI answer.

Ingest is the hot path, so ``IngestEndpoint`` answers it as plain WSGI in front of
Flask: no request context, routing, session or error-handler machinery runs for a
webhook (bench/run.py measured that machinery at about a fifth of an ingest request's
time on granian). Everything else goes on to the Flask app; the blueprint only lets
Flask build the URL (``url_for("ingest.hook", source=...)``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint
from werkzeug.wsgi import get_current_url, get_input_stream

from engine.ingress.ingest import IngestResult, error, ingest
from engine.ingress.schemes import IncomingRequest
from engine.runtime import Runtime
from engine.store.rejections import REJECTED_STATUSES, Rejection

log = logging.getLogger(__name__)

bp = Blueprint("ingest", __name__)

PREFIX = "/hooks/"
METHODS = ("POST", "PUT")
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class BodyTooLarge(Exception):
    """The declared Content-Length exceeds the limit (answered 413 unread)."""


_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


class IngestEndpoint:
    """WSGI middleware: answers ``POST|PUT /hooks/<source>`` itself and hands every
    other request to ``app`` unchanged."""

    def __init__(self, app: WSGIApp, rt: Runtime):
        self.app = app
        self.rt = rt

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX):
            slug = path[len(PREFIX):]
            if slug and "/" not in slug:  # the paths Flask's "/hooks/<source>" would match
                if environ.get("REQUEST_METHOD") in METHODS:
                    return answer(self.rt, _wsgi_text(slug), environ, start_response)
                return _respond(start_response, error(
                    405, "method_not_allowed", "send webhooks with POST (or PUT)",
                    Allow=", ".join(METHODS)))
        return self.app(environ, start_response)


def answer(rt: Runtime, slug: str, environ: dict[str, Any],
           start_response: StartResponse) -> list[bytes]:
    req: IncomingRequest | None = None
    try:
        req = incoming(environ, rt.settings.max_body_bytes)
        result = ingest(rt, slug, req)
    except BodyTooLarge:
        result = error(413, "too_large", f"body exceeds {rt.settings.max_body_bytes} bytes")
    except Exception:
        log.exception("unhandled error while ingesting a webhook for %r", slug)
        result = error(500, "internal_error", "an internal error occurred; see the logs")
    if result.status in REJECTED_STATUSES:
        record_rejection(rt, slug, environ, req, result)
    return _respond(start_response, result)


def record_rejection(rt: Runtime, slug: str, environ: dict[str, Any],
                     req: IncomingRequest | None, result: IngestResult) -> None:
    """Offer a refused webhook of a known source to the rejection record (counted, a
    sample stored without credentials). Never raises: the answer stays the 4xx."""
    try:
        source = rt.catalog.source(slug)
        if source is None:
            return
        spec = source.verify
        secret_names = {n for n in (spec.header, spec.param) if n}
        if spec.scheme == "token" and not spec.header:
            secret_names.add(spec.param or "token")
        body = result.body if isinstance(result.body, dict) else {}
        declared = environ.get("CONTENT_LENGTH") or ""
        rt.rejections.offer(Rejection(
            source=slug, status=result.status, code=str(body.get("error", "")),
            reason=str(body.get("message", "")),
            method=environ.get("REQUEST_METHOD", "POST"),
            content_type=environ.get("CONTENT_TYPE", ""),
            headers=req.headers if req is not None else _headers(environ),
            query=req.query if req is not None else {},
            body=req.body if req is not None else b"",
            body_size=None if req is not None else (int(declared) if _ascii_digits(declared)
                                                    else 0),
            remote_addr=environ.get("REMOTE_ADDR"),
            secret_names=frozenset(secret_names),
        ))
    except Exception:
        log.exception("could not record a rejected webhook for %r", slug)


def _respond(start_response: StartResponse, result: IngestResult) -> list[bytes]:
    status, headers, body = encode(result)
    start_response(status, headers)
    return [body]


def incoming(environ: dict[str, Any], max_body: int) -> IncomingRequest:
    """What verification and parsing need, read straight from the WSGI environ
    (header names lower-case; the body read up to one byte past the limit, so an
    oversize body without a Content-Length is still told apart)."""
    headers = _headers(environ)
    qs = environ.get("QUERY_STRING", "")
    query: dict[str, Any] = {}
    if qs:
        parsed = parse_qs(_wsgi_text(qs), keep_blank_values=True, errors="replace")
        query = {k: (v[0] if len(v) == 1 else v) for k, v in parsed.items()}
    declared = environ.get("CONTENT_LENGTH")
    if declared and _ascii_digits(declared) and int(declared) > max_body:
        raise BodyTooLarge  # answered without reading the body
    stream = get_input_stream(environ)  # Content-Length bounded, or a terminated chunked body
    return IncomingRequest(
        method=environ["REQUEST_METHOD"],
        url="",
        url_factory=lambda: get_current_url(environ),  # only Twilio signs the URL
        headers=headers,
        query=query,
        body=stream.read(max_body + 1),
        content_type=environ.get("CONTENT_TYPE", ""),
        remote_addr=environ.get("REMOTE_ADDR"),
    )


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers, names lower-case."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


def encode(result: IngestResult) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status line, headers and body of an IngestResult: JSON unless a reply step
    gave a raw body; a reply's own headers (Content-Type included) win."""
    if result.raw is not None:
        body, ctype = result.raw, "text/html; charset=utf-8"
    elif result.body is not None:
        body = json.dumps(result.body, separators=(",", ":"), default=str).encode() + b"\n"
        ctype = "application/json"
    else:
        body, ctype = b"", "text/html; charset=utf-8"
    given = {k.lower() for k in result.headers}
    headers = [(k, v) for k, v in result.headers.items() if k.lower() != "content-length"]
    if "content-type" not in given:
        headers.append(("Content-Type", ctype))
    headers.append(("Content-Length", str(len(body))))
    status = _STATUS_LINES.get(result.status) or f"{result.status} Unknown"
    return status, headers, body


def _wsgi_text(value: str) -> str:
    """WSGI carries the path and query as bytes decoded as latin-1; they are UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _ascii_digits(value: str) -> bool:
    """A header holds a decimal number: ASCII digits only (str.isdigit() is true for
    "²", which int() refuses)."""
    return value.isascii() and value.isdigit()


bp.add_url_rule("/hooks/<source>", endpoint="hook", build_only=True)
