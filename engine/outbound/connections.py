"""A connection applied to one outgoing call: URL join, auth, default headers, the
service's own failure answers, and OAuth 2.0 tokens.

``prepare`` turns a connection (``rules.connection_models.ConnectionSpec``), the step's
relative URL and a secret lookup into the absolute URL and headers to send, plus how
the call is shown in records (every credential as ``[secret:NAME]``). ``classify``
reads a typed service's answer: Slack's and Telegram's ``ok: false`` are failures with
the service's error code as the reason (HTTP 200 or not), Telegram's
``parameters.retry_after`` and Discord's 429 ``retry_after`` are the wait before the
next attempt, Stripe's ``Stripe-Should-Retry`` decides, Twilio's and Stripe's error
bodies give the reason. ``form_body`` encodes a mapping the way Twilio (repeated
names) and Stripe (``a[b]``, ``a[0]``) read forms.

OAuth 2.0 client-credentials tokens are fetched with the egress-guarded client, kept
in Redis (or, without Redis, in this process) until shortly before they expire, and
never logged, stored in a record or shown; ``forget_token`` drops one the API refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import httpx

from engine.errors import PermanentActionError, TransientActionError
from rules.connection_models import ConnectionSpec, OAuth2ClientCredentials

log = logging.getLogger(__name__)

TOKEN_MARGIN_S = 30.0  # a token is fetched again this long before it expires
TOKEN_DEFAULT_TTL_S = 3600.0  # when the token endpoint does not say (expires_in)
TOKEN_MIN_TTL_S = 1.0
TOKEN_KEY_PREFIX = "hookwise:oauth2:"

FORM_TYPES = frozenset({"twilio", "stripe"})
"""Connection types whose APIs take form-encoded bodies: a ``json`` mapping is sent
as application/x-www-form-urlencoded."""

SLACK_TRANSIENT = frozenset({"ratelimited", "rate_limited", "internal_error", "fatal_error",
                             "service_unavailable", "request_timeout", "team_added_to_org"})
"""Slack ``error`` codes worth another attempt; every other one fails the step."""


@dataclass
class Prepared:
    """The connection's part of one request."""

    url: str  # absolute, credentials in it where the service wants them (path, query)
    headers: dict[str, str]  # lower-case names: the connection's default headers
    auth_headers: dict[str, str] = field(default_factory=dict)  # sent over the step's
    secrets: dict[str, str] = field(default_factory=dict)  # name -> value, for redaction

    def shown(self, value: Any) -> Any:
        """``value`` with every credential (and its encoded forms) as ``[secret:NAME]``."""
        return redact(value, self.secrets)


SecretLookup = Callable[[str], str]


def join_url(base: str, relative: str | None) -> str:
    """``base`` + ``relative`` (one slash between); an absolute or scheme-relative
    ``relative`` is refused: the connection's credentials go to its own base URL only."""
    rel = (relative or "").strip()
    if rel:
        parts = urlsplit(rel)
        if parts.scheme or rel.startswith("//"):
            raise PermanentActionError(
                f"url {rel!r} is absolute; with a connection the url is relative to its "
                f"base URL {base}")
    if not rel:
        return base
    if rel.startswith(("?", "#")):
        return base + rel
    return base.rstrip("/") + "/" + rel.lstrip("/")


def prepare(spec: ConnectionSpec, relative: str | None, *, secret: SecretLookup,
            http: httpx.Client, redis: Any = None) -> Prepared:
    """The absolute URL and the headers for a call through ``spec``. ``secret`` gives a
    stored secret's value by name (PermanentActionError naming the connection and the
    secret when it is not set)."""
    values: dict[str, str] = {}

    def value_of(name: str) -> str:
        try:
            got = secret(name)
        except Exception as exc:  # SecretNotFound, ConfigError: the reason is in the text
            raise PermanentActionError(f"connection {spec.name}: {exc}") from None
        if not got:
            raise PermanentActionError(f"connection {spec.name}: secret {name!r} is empty")
        values[name] = got
        return got

    base = spec.url
    headers: dict[str, str] = {}
    auth = spec.auth
    if spec.type == "telegram" and auth is not None:
        # the Bot API takes its token in the path: https://api.telegram.org/bot<token>/
        base = base.rstrip("/") + "/bot" + value_of(auth.secret)
        auth = None
    url = join_url(base, relative)
    if auth is None:
        pass
    elif auth.type == "bearer":
        scheme = "Bot" if spec.type == "discord" else "Bearer"
        headers["authorization"] = f"{scheme} {value_of(auth.secret)}"
    elif auth.type == "basic":
        pair = f"{auth.username}:{value_of(auth.secret)}".encode()
        token = base64.b64encode(pair).decode()
        values[f"{auth.secret} (basic)"] = token
        headers["authorization"] = f"Basic {token}"
    elif auth.type == "header":
        headers[auth.name.lower()] = value_of(auth.secret)
    elif auth.type == "query":
        url = str(httpx.URL(url).copy_add_param(auth.name, value_of(auth.secret)))
    else:
        token = access_token(spec.name, auth, value_of(auth.secret), http=http, redis=redis)
        values[f"{auth.secret} (token)"] = token
        headers["authorization"] = f"Bearer {token}"
    return Prepared(url=url, headers={k.lower(): v for k, v in spec.headers.items()},
                    auth_headers=headers, secrets=values)


# -- OAuth 2.0 client credentials -------------------------------------------------------
class _MemoryTokens:
    """Tokens of this process, for a runtime without Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, str]] = {}

    def get(self, key: str) -> str | None:
        with self._lock:
            hit = self._tokens.get(key)
            if hit is None or hit[0] <= time.monotonic():
                self._tokens.pop(key, None)
                return None
            return hit[1]

    def set(self, key: str, token: str, ttl_s: float) -> None:
        with self._lock:
            self._tokens[key] = (time.monotonic() + ttl_s, token)

    def delete(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)


_memory = _MemoryTokens()
_fetch_lock = threading.Lock()


def _token_key(auth: OAuth2ClientCredentials, client_secret: str) -> str:
    # the client secret is part of the key (hashed): a rotated secret gets a new token
    ident = "\0".join((auth.token_url, auth.client_id, auth.scope or "", client_secret))
    return TOKEN_KEY_PREFIX + hashlib.sha256(ident.encode()).hexdigest()


def _cached(redis: Any, key: str) -> str | None:
    if redis is not None:
        try:
            raw = redis.get(key)
        except Exception as exc:  # Redis down: this process's memory serves
            log.warning("oauth2 token cache unavailable (%s); using this process's",
                        type(exc).__name__)
        else:
            return raw.decode() if isinstance(raw, bytes) else raw
    return _memory.get(key)


def _store(redis: Any, key: str, token: str, ttl_s: float) -> None:
    _memory.set(key, token, ttl_s)
    if redis is not None:
        try:
            redis.set(key, token, px=max(int(ttl_s * 1000), 1))
        except Exception as exc:
            log.warning("oauth2 token not cached in Redis (%s)", type(exc).__name__)


def forget_token(auth: OAuth2ClientCredentials, client_secret: str, *, redis: Any) -> None:
    """Drop a cached token (the API answered 401: it was revoked or expired early)."""
    key = _token_key(auth, client_secret)
    _memory.delete(key)
    if redis is not None:
        try:
            redis.delete(key)
        except Exception:
            pass


def access_token(name: str, auth: OAuth2ClientCredentials, client_secret: str, *,
                 http: httpx.Client, redis: Any = None) -> str:
    """A valid access token for ``auth``: the cached one, else a new one from its token
    endpoint (client_secret_basic, RFC 6749 2.3.1), cached until ``expires_in`` minus
    a margin."""
    key = _token_key(auth, client_secret)
    token = _cached(redis, key)
    if token:
        return token
    with _fetch_lock:  # threads of one worker share one fetch
        token = _cached(redis, key)
        if token:
            return token
        token, ttl = _fetch_token(name, auth, client_secret, http)
        _store(redis, key, token, ttl)
        return token


def _fetch_token(name: str, auth: OAuth2ClientCredentials, client_secret: str,
                 http: httpx.Client) -> tuple[str, float]:
    form = {"grant_type": "client_credentials"}
    if auth.scope:
        form["scope"] = auth.scope
    where = f"connection {name}: token endpoint {urlsplit(auth.token_url).netloc}"
    try:
        response = http.post(auth.token_url, data=form, auth=(auth.client_id, client_secret),
                             headers={"accept": "application/json"}, timeout=10.0)
    except httpx.TimeoutException as exc:
        raise TransientActionError(f"{where} timed out") from exc
    except httpx.TransportError as exc:
        raise TransientActionError(f"{where} could not be reached: "
                                   f"{type(exc).__name__}") from exc
    except Exception as exc:  # the egress guard, a bad URL
        raise PermanentActionError(f"{where}: {exc}") from exc
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if status == 429 or status >= 500:
        raise TransientActionError(f"{where} answered {status}")
    if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
        # RFC 6749 5.2: {"error": "invalid_client", "error_description": ...}
        detail = ""
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            detail = f": {body['error']}"
            if isinstance(body.get("error_description"), str):
                detail += f" ({body['error_description'][:200]})"
        raise PermanentActionError(f"{where} answered {status} without an access token"
                                   f"{detail}")
    token = str(body["access_token"])
    try:
        ttl = float(body.get("expires_in", TOKEN_DEFAULT_TTL_S))
    except (TypeError, ValueError):
        ttl = TOKEN_DEFAULT_TTL_S
    ttl = ttl - min(TOKEN_MARGIN_S, ttl / 10)
    return token, max(ttl, TOKEN_MIN_TTL_S)


# -- request bodies ----------------------------------------------------------------------
def form_body(spec: ConnectionSpec, value: Any) -> bytes:
    """A mapping form-encoded as ``spec``'s service reads it: Stripe nests with brackets
    (``metadata[order]=1``, ``items[0][price]=p``), Twilio and others repeat a name for
    each list item (``MediaUrl=a&MediaUrl=b``)."""
    if not isinstance(value, Mapping):
        raise PermanentActionError(
            f"a {spec.type} connection sends forms: json must be a mapping of fields, "
            f"got {type(value).__name__}")
    pairs: list[tuple[str, str]] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return "" if v is None else str(v)

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, Mapping):
            if spec.type != "stripe":
                pairs.append((prefix, json.dumps(v, separators=(",", ":"))))
                return
            for k, sub in v.items():
                walk(f"{prefix}[{k}]", sub)
        elif isinstance(v, list | tuple):
            for i, sub in enumerate(v):
                walk(f"{prefix}[{i}]" if spec.type == "stripe" else prefix, sub)
        else:
            pairs.append((prefix, scalar(v)))

    for k, v in value.items():
        walk(str(k), v)
    return "&".join(f"{quote_plus(k, safe='[]')}={quote_plus(v)}" for k, v in pairs).encode()


# -- the service's answer -----------------------------------------------------------------
def classify(spec: ConnectionSpec, response: httpx.Response, record: dict[str, Any], *,
             retry_after: float | None = None) -> None:
    """Raise the failure a typed service's answer means (also for HTTP 2xx), with its
    own reason and wait; return when the answer is, for the service, a success or when
    the generic HTTP rules should decide. ``retry_after``: the answer's Retry-After."""
    body = record.get("json")
    status = response.status_code
    if not isinstance(body, dict):
        body = _json_of(record)
    if spec.type == "slack":
        _slack(status, body, retry_after, record)
    elif spec.type == "telegram":
        _telegram(status, body, retry_after, record)
    elif spec.type == "discord":
        _discord(status, body, retry_after, record)
    elif spec.type == "teams":
        _teams(status, record)
    elif spec.type == "stripe":
        _stripe(status, body, response, retry_after, record)
    elif spec.type == "twilio":
        _twilio(status, body, record)


def _json_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """Services answer JSON even when they do not say so in Content-Type."""
    text = record.get("text")
    if isinstance(text, str) and text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 7 * 86400 else None


def _slack(status: int, body: dict[str, Any] | None, header_wait: float | None,
           record: dict[str, Any]) -> None:
    if status == 429:
        raise TransientActionError("slack rate limited the call (429)",
                                   retry_after=header_wait, output=record)
    if not isinstance(body, dict) or body.get("ok") is not False:
        return
    code = str(body.get("error") or "unknown_error")
    reason = f"slack answered ok: false: {code}"
    if code in SLACK_TRANSIENT or status >= 500:
        raise TransientActionError(reason, retry_after=header_wait, output=record)
    raise PermanentActionError(reason, output=record)


def _telegram(status: int, body: dict[str, Any] | None, header_wait: float | None,
              record: dict[str, Any]) -> None:
    if not isinstance(body, dict) or body.get("ok") is not False:
        return
    code = body.get("error_code", status)
    reason = f"telegram answered ok: false: {body.get('description') or 'no description'}"
    params = body.get("parameters")
    asked = _number(params.get("retry_after")) if isinstance(params, dict) else None
    if code == 429 or status == 429 or status >= 500 or asked is not None:
        raise TransientActionError(reason, retry_after=header_wait if asked is None else asked,
                                   output=record)
    raise PermanentActionError(reason, output=record)


def _discord(status: int, body: dict[str, Any] | None, header_wait: float | None,
             record: dict[str, Any]) -> None:
    if status != 429:
        if status >= 400 and isinstance(body, dict) and body.get("message"):
            message = f"discord answered {status}: {body.get('message')}"
            if "code" in body:
                message += f" (code {body['code']})"
            if status >= 500:
                raise TransientActionError(message, output=record)
            raise PermanentActionError(message, output=record)
        return
    waits = [w for w in (_number(body.get("retry_after")) if isinstance(body, dict) else None,
                         header_wait) if w is not None]
    scope = " (global)" if isinstance(body, dict) and body.get("global") else ""
    raise TransientActionError(f"discord rate limited the call (429){scope}",
                               retry_after=max(waits) if waits else None, output=record)


def _teams(status: int, record: dict[str, Any]) -> None:
    # a (legacy connector) incoming webhook answers 200 with the failure as text
    text = str(record.get("text") or "")
    if 200 <= status < 300 and "delivery failed" in text.lower():
        reason = f"teams answered: {text[:300]}"
        if "429" in text or "throttl" in text.lower():
            raise TransientActionError(reason, output=record)
        raise PermanentActionError(reason, output=record)


def _stripe(status: int, body: dict[str, Any] | None, response: httpx.Response,
            header_wait: float | None, record: dict[str, Any]) -> None:
    if status < 400:
        return
    error = body.get("error") if isinstance(body, dict) else None
    reason = f"stripe answered {status}"
    if isinstance(error, dict):
        bits = [str(error[k]) for k in ("type", "code") if error.get(k)]
        reason += f": {' '.join(bits)}" if bits else ""
        if error.get("message"):
            reason += f" ({str(error['message'])[:300]})"
    should = response.headers.get("stripe-should-retry", "").lower()
    if should == "true" or (should != "false" and (status == 429 or status >= 500)):
        raise TransientActionError(reason, retry_after=header_wait, output=record)
    raise PermanentActionError(reason, output=record)


def _twilio(status: int, body: dict[str, Any] | None, record: dict[str, Any]) -> None:
    if status < 400 or status == 429 or status >= 500 or not isinstance(body, dict):
        return
    reason = f"twilio answered {status}"
    if body.get("code"):
        reason += f": error {body['code']}"
    if body.get("message"):
        reason += f" ({str(body['message'])[:300]})"
    raise PermanentActionError(reason, output=record)


# -- redaction ------------------------------------------------------------------------------
def _forms(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}


def redact(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with each secret's value (as is, URL-encoded, JSON-escaped) shown as
    ``[secret:NAME]``."""
    needles = sorted(((f, name.split(" ")[0]) for name, v in secrets.items() if v
                      for f in _forms(v) if len(f) >= 3), key=lambda p: len(p[0]), reverse=True)
    if not needles:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for needle, name in needles:
                if needle in v:
                    v = v.replace(needle, f"[secret:{name}]")
            return v
        if isinstance(v, dict):
            return {walk(k) if isinstance(k, str) else k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)
