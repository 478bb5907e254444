"""Ingest: one incoming webhook → verified, parsed, deduplicated, committed, queued.

Framework-free: ``web.ingest`` (plain WSGI in front of Flask, for speed) builds the
IncomingRequest from the WSGI environ and turns the IngestResult into a response. The
order of checks is the HTTP contract: 404 unknown source, 413 too large, 401 not
genuine, 400/415 unreadable, then the commit (503 if it fails — never a 2xx for an event
that was not stored), then the enqueue (a Redis failure leaves the event pending for
the sweeper and still answers 202).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.broker import replies
from engine.errors import (
    BodyError,
    ConfigError,
    DuplicateEvent,
    SecretNotFound,
    StorageError,
    UnsupportedMediaType,
    VerificationError,
)
from engine.ids import new_id, utcnow
from engine.ingress import ratelimit
from engine.ingress.parsing import parse_body
from engine.ingress.schemes import IncomingRequest
from engine.ingress.verify import default_dedup, verify
from engine.store.secrets import CREDENTIAL_HEADERS, REDACTED
from rules.document import build_event_document
from rules.paths import compile_path

if TYPE_CHECKING:
    from engine.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    event_id: str | None = None
    raw: bytes | None = None  # a reply step's raw body (text/XML) instead of JSON


def error(status: int, code: str, message: str, **headers: str) -> IngestResult:
    return IngestResult(status, {"error": code, "message": message}, dict(headers))


def ingest(rt: Runtime, slug: str, req: IncomingRequest) -> IngestResult:
    """Carry one webhook from the wire to a durable, queued event."""
    try:
        source = rt.catalog.source(slug)
    except Exception as exc:  # the database is down: we cannot even know the source
        log.warning("source lookup failed: %s", exc)
        return error(503, "unavailable", "the event could not be stored: database unavailable")
    if source is None:
        return error(404, "unknown_source", f"no source named {slug!r}")
    if len(req.body) > rt.settings.max_body_bytes:
        return error(413, "too_large", f"body exceeds {rt.settings.max_body_bytes} bytes")
    if source.rate_limit is not None:
        wait = _rate_limited(rt, slug, source.rate_limit)
        if wait is not None:
            return error(429, "rate_limited",
                         f"more than {source.rate_limit.requests} requests in "
                         f"{source.rate_limit.per_s} s; retry after {math.ceil(wait)} s",
                         **{"Retry-After": str(math.ceil(wait))})

    try:
        secret = rt.secrets.get_cached(source.verify.secret) if source.verify.secret else ""
    except (SecretNotFound, ConfigError) as exc:
        log.error("source %s cannot verify: %s", slug, exc)
        return error(401, "verification_failed", f"source cannot verify requests: {exc}")
    try:
        verify(source.verify, req, secret)
    except VerificationError as exc:
        return error(401, "verification_failed", str(exc))

    try:
        body = parse_body(req.content_type, req.body, github=source.verify.scheme == "github"
                          or "x-github-event" in req.headers)
    except BodyError as exc:
        return error(400, "bad_body", str(exc))
    except UnsupportedMediaType as exc:
        return error(415, "unsupported_media_type", str(exc))
    if source.verify.scheme == "slack" and _is_url_verification(body):
        # Slack's Events API handshake: answered here, not stored as an event.
        return IngestResult(200, {"challenge": body["challenge"]})

    event_id = new_id("evt")
    received_at = utcnow()
    dedup_key = _dedup_key(source, req, body, event_id, received_at, slug)
    headers, query = _without_credentials(source, req)
    row = {
        "id": event_id,
        "source": slug,
        "received_at": received_at,
        "method": req.method,
        "content_type": req.content_type,
        "headers": headers,
        "query": query,
        "body": body,
        "raw_body": req.body,
        "dedup_key": dedup_key,
    }
    waiter = None
    if source.respond.mode == "reply":  # listening before the event can reach a worker
        try:
            waiter = replies.Waiter(rt.redis, event_id, source.respond.timeout_ms / 1000)
        except Exception as exc:  # Redis down: answer as if immediate (once stored)
            log.warning("cannot wait for a reply to %s: %s", event_id, exc)
    try:
        queued = rt.event_writer.write(row)  # committed (then queued) when it returns
    except DuplicateEvent as dup:
        return IngestResult(
            200, {"event_id": dup.event_id, "duplicate": True}, event_id=dup.event_id
        )
    except StorageError as exc:
        log.error("event for %s not stored: %s", slug, exc)
        return error(503, "unavailable", "the event could not be stored; retry later")
    if not queued:  # stored; the sweeper queues it (the writer logged why)
        waiter = None

    accepted = IngestResult(202, {"event_id": event_id}, event_id=event_id)
    if waiter is None:
        return accepted
    answer = waiter.wait()
    if answer is None:
        fb = source.respond.fallback
        return _reply_result(fb, event_id) if fb else accepted
    return _reply_result(answer, event_id)


def _reply_result(reply: dict[str, Any], event_id: str) -> IngestResult:
    headers = {str(k): str(v) for k, v in (reply.get("headers") or {}).items()}
    headers.setdefault("X-Hookwise-Event-Id", event_id)
    status = int(reply.get("status", 200))
    if reply.get("json") is not None:
        return IngestResult(status, reply["json"], headers, event_id)
    text = reply.get("text") if reply.get("text") is not None else reply.get("body")
    if text is not None:
        ctype = reply.get("content_type") or ("text/plain; charset=utf-8")
        headers.setdefault("Content-Type", ctype)
        return IngestResult(status, None, headers, event_id, raw=str(text).encode())
    return IngestResult(status, None, headers, event_id, raw=b"")


def _without_credentials(source: Any, req: IncomingRequest) -> tuple[dict, dict]:
    """Headers and query to store: shared secrets a sender proved itself with (tokens,
    passwords) are redacted. Signatures stay: they reveal nothing."""
    spec = source.verify
    secret_headers = set(CREDENTIAL_HEADERS)  # the same list redacts outgoing steps
    if spec.scheme == "token" and spec.header:
        secret_headers.add(spec.header.lower())
    headers = {k: (REDACTED if k in secret_headers else v) for k, v in req.headers.items()}
    query = dict(req.query)
    if spec.scheme == "token" and not spec.header:
        param = spec.param or "token"
        if param in query:
            query[param] = REDACTED
    return headers, query


def _rate_limited(rt: Runtime, slug: str, spec: Any) -> float | None:
    try:
        conn = rt.redis
    except ConfigError:
        return None
    return ratelimit.check(conn, slug, spec)


def _is_url_verification(body: Any) -> bool:
    return (isinstance(body, dict) and body.get("type") == "url_verification"
            and isinstance(body.get("challenge"), str))


def _dedup_key(
    source: Any, req: IncomingRequest, body: Any, event_id: str, received_at: Any, slug: str
) -> str | None:
    """The source's dedup key, or its scheme's default (Stripe event id, GitHub
    delivery id, ...), so a provider's retry of one delivery never runs twice."""
    spec = source.dedup or default_dedup(source.verify.scheme)
    if spec is None:
        return None
    if spec.header:
        value = req.headers.get(spec.header.lower())
        return value[:255] if value else None
    doc = build_event_document(
        body, req.headers, req.query, {"id": event_id, "source": slug, "received_at": ""}
    )
    values = compile_path(spec.path).values(doc)
    if not values or values[0] is None:
        return None
    return str(values[0])[:255]
