"""The ``webhook`` action: send one HTTP request with the egress-guarded client.

``rendered`` fields (templates already rendered):

    url        http(s) URL (required)
    method     default POST
    headers    mapping; ``Idempotency-Key: <execution>:<step>`` is added unless set
    query      mapping merged into the URL's query string (a name in both: this wins;
               list values repeat the name)
    json       any JSON value, sent compactly as application/json   } at most one
    body       raw text, sent as text/plain unless Content-Type set } of these two
    timeout_s  whole-request timeout in seconds (default 10)
    sign       {scheme: standard, secret: <secret VALUE>} adds Standard Webhooks headers.
               The engine resolves the rule's secret *name* to its value before calling
               ``run``; this module never sees secret names.
    connection the NAME of a stored connection: ``url`` is relative to its base URL, its
               default headers and auth are added (``engine.outbound.connections``; its
               secrets are read by name at call time and appear in the output only as
               ``[secret:NAME]``), a typed one's failure answers are failures and a
               ``json`` mapping is form-encoded for Twilio and Stripe; an OAuth 2.0
               token the API refuses (401) is fetched again once.

Output (``steps.<id>``): ``status``, ``headers`` (lower-case names), ``json`` (parsed
when the answer is JSON, else None), ``text`` (first 64 KiB), ``elapsed_ms``, ``url``;
through a connection also ``request`` (the URL and headers sent, credentials shown as
``[secret:NAME]``).

Classification: connect errors, timeouts, other network errors, 429 and 5xx are
transient (429/5xx carry ``retry_after`` from Retry-After and the response as
``output``); a 3xx (redirects are never followed), any other 4xx, an egress refusal, a
bad URL or a bad field are permanent.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import httpx

from engine.actions.base import StepContext
from engine.errors import ActionError, PermanentActionError, TransientActionError
from engine.outbound import connections
from engine.outbound.egress import EgressRefused
from engine.outbound.instance import inspector_client, is_own_inspector
from engine.outbound.signing import message_id, sign_standard
from engine.store import connections as stored_connections
from rules.connection_models import ConnectionSpec

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 300.0
TEXT_CAP = 64 * 1024
READ_CAP = 1024 * 1024  # bytes read from an answer; beyond this it is cut (and not parsed)
SIGN_SCHEMES = ("standard",)


def run(rendered: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Send the request described by ``rendered``; return the response record."""
    name = rendered.get("connection")
    if not name:
        return _send(_build_request(rendered, ctx), rendered, ctx)
    spec = stored_connections.lookup(ctx.db, str(name))
    if spec is None:
        raise PermanentActionError(f"no connection named {name!r} (define it under "
                                   "connections:)")
    for secret in spec.secret_names():
        source = stored_connections.verified_by(ctx.db, secret)
        if source is not None:
            raise PermanentActionError(
                f"connection {spec.name}: secret {secret!r} verifies the webhooks of source "
                f"{source!r}, and verification secrets are not sent out; store a copy under "
                "another name for outgoing calls")
    return _through(spec, rendered, ctx)


def _through(spec: ConnectionSpec, rendered: dict[str, Any], ctx: StepContext,
             *, again: bool = False) -> dict[str, Any]:
    """Send through a connection; every credential is redacted from what comes back."""
    prepared: connections.Prepared | None = None
    request: httpx.Request | None = None
    try:
        prepared = connections.prepare(spec, rendered.get("url"), secret=ctx.resolve_secret,
                                       http=ctx.http, redis=ctx.redis)
        step = _with_connection(spec, rendered, prepared)
        request = _build_request(step, ctx)
        record = _send(request, step, ctx, connection=spec)
    except ActionError as exc:
        if prepared is None:
            raise
        auth = spec.auth
        output = exc.output or {}
        if (not again and auth is not None and auth.type == "oauth2_client_credentials"
                and output.get("status") == 401):
            # the token was revoked or expired early: fetch a new one, once
            connections.forget_token(auth, ctx.resolve_secret(auth.secret), redis=ctx.redis)
            return _through(spec, rendered, ctx, again=True)
        if exc.output is not None:
            exc.output = prepared.shown(exc.output)
            if request is not None:
                exc.output["request"] = _shown_request(request, prepared)
        exc.args = (prepared.shown(str(exc)),)
        raise
    out: dict[str, Any] = prepared.shown(record)
    out["request"] = _shown_request(request, prepared)
    return out


def _with_connection(spec: ConnectionSpec, rendered: dict[str, Any],
                     prepared: connections.Prepared) -> dict[str, Any]:
    """The step as sent: the absolute URL, the connection's headers under the step's, a
    form body for the services that take forms."""
    step = {k: v for k, v in rendered.items() if k != "connection"}
    step["url"] = prepared.url
    headers = {**prepared.headers, **_headers(rendered.get("headers")),
               **prepared.auth_headers}
    step["headers"] = headers
    if spec.type in connections.FORM_TYPES and "json" in step:
        step["body"] = connections.form_body(spec, step.pop("json")).decode()
        headers.setdefault("content-type", "application/x-www-form-urlencoded")
    return step


def _shown_request(request: httpx.Request, prepared: connections.Prepared) -> dict[str, Any]:
    shown_headers = {k: v for k, v in request.headers.items()
                     if k.lower() not in ("content-length", "accept-encoding", "connection")}
    return {"method": request.method, "url": prepared.shown(str(request.url)),
            "headers": prepared.shown(shown_headers)}


def _send(request: httpx.Request, rendered: dict[str, Any], ctx: StepContext, *,
          connection: ConnectionSpec | None = None) -> dict[str, Any]:
    timeout = _timeout(rendered.get("timeout_s"))
    host = request.url.host
    # this instance's own request inspector is the one private address allowed as is
    client = inspector_client() if is_own_inspector(request.url, ctx.settings.data_dir) \
        else ctx.http
    started = time.perf_counter()
    try:
        response = client.send(request, stream=True)
        try:
            raw, truncated = _read_capped(response)
        finally:
            response.close()
    except EgressRefused as exc:
        raise PermanentActionError(str(exc)) from exc
    except httpx.TimeoutException as exc:
        raise TransientActionError(f"timed out after {timeout.read}s talking to {host}") from exc
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        raise PermanentActionError(f"cannot send to {host}: {exc}") from exc
    except httpx.TransportError as exc:
        raise TransientActionError(f"could not reach {host}: {exc or type(exc).__name__}") from exc
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    record = _record(response, raw, truncated, elapsed_ms)
    if connection is not None:
        connections.classify(connection, response, record,
                             retry_after=parse_retry_after(response.headers.get("retry-after")))
    _classify(response, record)
    return record


def _build_request(rendered: dict[str, Any], ctx: StepContext) -> httpx.Request:
    url = rendered.get("url")
    if not isinstance(url, str) or not url.strip():
        raise PermanentActionError("webhook step needs a url")
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise PermanentActionError(f"invalid url {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise PermanentActionError(f"url scheme must be http or https, got {url!r}")
    if not parsed.host:
        raise PermanentActionError(f"url has no host: {url!r}")

    method = str(rendered.get("method") or "POST").strip().upper()
    if not method.isalpha():
        raise PermanentActionError(f"invalid HTTP method {method!r}")

    headers = _headers(rendered.get("headers"))
    if "json" in rendered and "body" in rendered:
        raise PermanentActionError("webhook step takes one of json or body, not both")
    content: bytes | None = None
    if "json" in rendered:
        try:
            content = json.dumps(
                rendered["json"], separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        except (TypeError, ValueError) as exc:
            raise PermanentActionError(f"json is not JSON-serialisable: {exc}") from exc
        headers.setdefault("content-type", "application/json")
    elif rendered.get("body") is not None:
        body = rendered["body"]
        content = body if isinstance(body, bytes) else str(body).encode()
        headers.setdefault("content-type", "text/plain; charset=utf-8")

    headers.setdefault("idempotency-key", ctx.idempotency_key)
    sign = rendered.get("sign")
    if sign:
        headers.update(_signature(sign, ctx, content or b""))

    query = rendered.get("query") or None
    if query is not None and not isinstance(query, dict):
        raise PermanentActionError("query must be a mapping of names to values")
    try:
        return ctx.http.build_request(
            method,
            parsed.copy_merge_params(_query(query)) if query else parsed,
            headers=headers,
            content=content,
            timeout=_timeout(rendered.get("timeout_s")),
        )
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise PermanentActionError(f"cannot build the request: {exc}") from exc


def _headers(raw: Any) -> dict[str, str]:
    """User headers with lower-case names; None values dropped, others made strings."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PermanentActionError("headers must be a mapping of names to values")
    return {str(k).lower(): str(v) for k, v in raw.items() if v is not None}


QueryValue = str | int | float | bool | None


def _query(raw: dict[str, Any]) -> list[tuple[str, QueryValue]]:
    pairs: list[tuple[str, QueryValue]] = []
    for name, value in raw.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None:
                continue
            text = json.dumps(item) if isinstance(item, bool) else str(item)
            pairs.append((str(name), text))
    return pairs


def _timeout(raw: Any) -> httpx.Timeout:
    if raw is None or raw == "":
        return httpx.Timeout(DEFAULT_TIMEOUT_S)
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise PermanentActionError(f"timeout_s must be a number, got {raw!r}") from None
    if not 0 < seconds <= MAX_TIMEOUT_S or math.isnan(seconds):
        raise PermanentActionError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}], got {raw!r}")
    return httpx.Timeout(seconds)


def _signature(sign: Any, ctx: StepContext, body: bytes) -> dict[str, str]:
    if not isinstance(sign, dict):
        raise PermanentActionError("sign must be a mapping {scheme, secret}")
    scheme = sign.get("scheme", "standard")
    if scheme not in SIGN_SCHEMES:
        raise PermanentActionError(f"unknown signing scheme {scheme!r}; use one of {SIGN_SCHEMES}")
    secret = sign.get("secret")
    if not isinstance(secret, str) or not secret:
        raise PermanentActionError("sign.secret is empty (is the secret stored?)")
    return sign_standard(secret, message_id(ctx.idempotency_key), int(time.time()), body)


def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > READ_CAP:
            return b"".join(chunks)[:READ_CAP], True
    return b"".join(chunks), False


def _record(
    response: httpx.Response, raw: bytes, truncated: bool, elapsed_ms: float
) -> dict[str, Any]:
    encoding = response.encoding or "utf-8"
    text = raw.decode(encoding, errors="replace")
    parsed: Any = None
    content_type = response.headers.get("content-type", "").lower()
    if not truncated and raw and "json" in content_type:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    return {
        "status": response.status_code,
        "headers": {k.lower(): v for k, v in response.headers.items()},
        "json": parsed,
        "text": text[:TEXT_CAP],
        "elapsed_ms": elapsed_ms,
        "url": str(response.url),
    }


def _classify(response: httpx.Response, record: dict[str, Any]) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    answered = f"target answered {status} {_phrase(response)}".rstrip()
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise TransientActionError(answered, retry_after=retry_after, output=record)
    if 300 <= status < 400:
        location = response.headers.get("location", "(no Location header)")
        raise PermanentActionError(f"redirect not followed: {status} to {location}", output=record)
    raise PermanentActionError(answered, output=record)


def _phrase(response: httpx.Response) -> str:
    if response.reason_phrase:
        return response.reason_phrase
    try:
        return HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def destination_url(db: Any, rendered: dict[str, Any]) -> Any:
    """The URL a rendered webhook step calls, for its destination's limits: its
    connection's base URL when it has one (its host is the step's host)."""
    name = rendered.get("connection")
    if not name:
        return rendered.get("url")
    spec = stored_connections.lookup(db, str(name))
    return spec.url if spec is not None else None
