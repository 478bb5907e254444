"""Verification schemes of the webhook providers, each over the raw body, with the
provider's own timestamp tolerance and default dedup key.

- github: X-Hub-Signature-256 = sha256=hex(HMAC-SHA256(body)); dedup X-GitHub-Delivery
- stripe: Stripe-Signature t=…,v1=… over "t.body", 300 s; dedup $.body.id (event id)
- slack: X-Slack-Signature v0=hex(HMAC("v0:ts:body")), 300 s; dedup $.body.event_id
- standard: Standard Webhooks / Svix (standardwebhooks library), 300 s; dedup webhook-id
- shopify: X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(body)); dedup X-Shopify-Webhook-Id
- twilio: X-Twilio-Signature = base64(HMAC-SHA1(url + sorted params)) for form bodies
  (content type compared case-insensitively); any other non-empty body must be signed by
  bodySHA256 in the URL (refused without it); the URL is tried with and without its
  default port; dedup I-Twilio-Idempotency-Token
- telegram: X-Telegram-Bot-Api-Secret-Token equals the secret; dedup $.body.update_id

Timestamps too old *or* too far in the future are refused. Messages say which check
failed, never what was expected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from engine.errors import VerificationError
from engine.ingress.parsing import media_type
from engine.ingress.schemes import IncomingRequest, Scheme, header
from rules.schema import DedupSpec, VerifySpec

DEFAULT_TOLERANCE_S = {"stripe": 300, "slack": 300, "standard": 300}

DEFAULT_DEDUP: dict[str, DedupSpec] = {
    "github": DedupSpec(header="X-GitHub-Delivery"),
    "stripe": DedupSpec(path="$.body.id"),
    "slack": DedupSpec(path="$.body.event_id"),
    "standard": DedupSpec(header="webhook-id"),
    "shopify": DedupSpec(header="X-Shopify-Webhook-Id"),
    "twilio": DedupSpec(header="I-Twilio-Idempotency-Token"),
    "telegram": DedupSpec(path="$.body.update_id"),
}


def _hmac(secret: str, msg: bytes, algo: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), msg, getattr(hashlib, algo)).digest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _check_age(ts_text: str, spec: VerifySpec, scheme: str, what: str) -> None:
    text = ts_text.strip()
    if not (text.isdigit() and len(text) <= 12):  # digits only; no float overflow
        raise VerificationError(f"{what} is not a Unix timestamp")
    ts = int(text)
    tolerance = spec.tolerance_s or DEFAULT_TOLERANCE_S.get(scheme, 300)
    skew = int(time.time()) - ts
    if skew > tolerance:
        raise VerificationError(f"{what} is {int(skew)} s old (tolerance {tolerance} s)")
    if skew < -tolerance:
        raise VerificationError(f"{what} is {int(-skew)} s in the future "
                                f"(tolerance {tolerance} s)")


def verify_github(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    given = header(req, "X-Hub-Signature-256")
    if not given.startswith("sha256="):
        raise VerificationError("X-Hub-Signature-256 header does not start with sha256=")
    if not _same(given[7:].strip().lower(), _hmac(secret, req.body).hex()):
        raise VerificationError("X-Hub-Signature-256 signature does not match the body")


def verify_stripe(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    raw = header(req, "Stripe-Signature")
    parts: dict[str, list[str]] = {}
    for item in raw.split(","):
        k, sep, v = item.strip().partition("=")
        if sep:
            parts.setdefault(k, []).append(v)
    if "t" not in parts or not parts.get("v1"):
        raise VerificationError("Stripe-Signature header is malformed (needs t= and v1=)")
    ts = parts["t"][0]
    expected = _hmac(secret, ts.encode() + b"." + req.body).hex()
    if not any(_same(v.lower(), expected) for v in parts["v1"]):
        raise VerificationError("Stripe-Signature v1 signature does not match the body")
    _check_age(ts, spec, "stripe", "Stripe-Signature timestamp")


def verify_slack(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    ts = header(req, "X-Slack-Request-Timestamp")
    given = header(req, "X-Slack-Signature")
    if not given.startswith("v0="):
        raise VerificationError("X-Slack-Signature header does not start with v0=")
    expected = "v0=" + _hmac(secret, b"v0:" + ts.encode() + b":" + req.body).hex()
    if not _same(given.strip().lower(), expected):
        raise VerificationError("X-Slack-Signature does not match the body")
    _check_age(ts, spec, "slack", "X-Slack-Request-Timestamp")


def verify_standard(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    """Standard Webhooks (also Svix's ``svix-*`` header names), via the library."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    hdrs = {k: v for k, v in req.headers.items()}
    for name in ("id", "timestamp", "signature"):
        if f"webhook-{name}" not in hdrs and f"svix-{name}" in hdrs:
            hdrs[f"webhook-{name}"] = hdrs[f"svix-{name}"]
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        if not hdrs.get(name):
            raise VerificationError(f"missing {name} header")
    _check_age(hdrs["webhook-timestamp"], spec, "standard", "webhook-timestamp")
    try:
        wh = Webhook(secret)
        # The library checks its own 5-minute window; ours (above) already decided.
        wh.verify(req.body, hdrs, json_parse=False)  # type: ignore[call-arg]
    except WebhookVerificationError as exc:
        msg = str(exc).lower()
        if "timestamp" in msg:
            raise VerificationError(f"webhook-timestamp refused: {exc}") from None
        raise VerificationError("webhook-signature does not match the body") from None
    except (ValueError, TypeError):
        raise VerificationError("webhook-signature header is malformed") from None


def verify_shopify(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    given = header(req, "X-Shopify-Hmac-Sha256").strip()
    if not _same(given, base64.b64encode(_hmac(secret, req.body)).decode()):
        raise VerificationError("X-Shopify-Hmac-Sha256 does not match the body")


def _twilio_urls(url: str) -> list[str]:
    """The URL as received, and the same with/without an explicit default port (Twilio
    signs whichever form it was configured with)."""
    u = urlsplit(url)
    host = u.hostname or ""
    default = 443 if u.scheme == "https" else 80
    with_port = urlunsplit((u.scheme, f"{host}:{u.port or default}", u.path, u.query, ""))
    without = urlunsplit((u.scheme, host if (u.port in (None, default)) else f"{host}:{u.port}",
                          u.path, u.query, ""))
    return list(dict.fromkeys([url, with_port, without]))


def verify_twilio(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    given = header(req, "X-Twilio-Signature").strip()
    query = dict(parse_qsl(urlsplit(req.full_url()).query, keep_blank_values=True))
    params: list[tuple[str, Any]] = []
    if "bodySHA256" in query:  # JSON body: the URL alone is signed, the body by hash
        if not _same(hashlib.sha256(req.body).hexdigest(), query["bodySHA256"].lower()):
            raise VerificationError("body does not match the bodySHA256 query parameter")
    elif media_type(req.content_type) == "application/x-www-form-urlencoded":
        # the same test (case-insensitive, parameters ignored) that parses it as a form
        params = sorted(parse_qsl(req.body.decode("utf-8", "replace"),
                                  keep_blank_values=True))
    elif req.body.strip():
        # the signature covers the URL only: a body not hashed into it is unauthenticated
        raise VerificationError("a Twilio request with a non-form body must carry the "
                                "bodySHA256 query parameter (the body is not signed "
                                "otherwise)")
    for url in _twilio_urls(req.full_url()):
        data = url + "".join(f"{k}{v}" for k, v in params)
        digest = base64.b64encode(_hmac(secret, data.encode(), "sha1")).decode()
        if _same(given, digest):
            return
    raise VerificationError("X-Twilio-Signature does not match the URL and parameters")


def verify_telegram(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    given = header(req, "X-Telegram-Bot-Api-Secret-Token")
    if not _same(given, secret):
        raise VerificationError("X-Telegram-Bot-Api-Secret-Token does not match")


PROVIDERS: dict[str, Scheme] = {
    "github": verify_github,
    "stripe": verify_stripe,
    "slack": verify_slack,
    "standard": verify_standard,
    "shopify": verify_shopify,
    "twilio": verify_twilio,
    "telegram": verify_telegram,
}

