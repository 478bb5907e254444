"""Verification schemes of the webhook providers, each over the raw body, with the
provider's own timestamp tolerance and default dedup key.

- github: X-Hub-Signature-256 = sha256=hex(HMAC-SHA256(body)); dedup X-GitHub-Delivery
- stripe: Stripe-Signature t=…,v1=… over "t.body", 300 s; dedup $.body.id (event id)
- slack: X-Slack-Signature v0=hex(HMAC("v0:ts:body")), 300 s; dedup $.body.event_id
- standard: Standard Webhooks / Svix (the standardwebhooks library's signing function),
  300 s; any valid v1 entry of the signature list passes; dedup webhook-id
- shopify: X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(body)); dedup X-Shopify-Webhook-Id
- twilio: X-Twilio-Signature = base64(HMAC-SHA1(url + sorted params)) for form bodies
  (content type compared case-insensitively), HMAC-SHA256 when
  X-Twilio-Webhooks-Signature-Settings says ``algorithm=HMAC_SHA256``; any other
  non-empty body must be signed by bodySHA256 in the URL (refused without it); the URL is
  tried as received, with its default port and without its port (as the twilio SDK
  does); dedup I-Twilio-Idempotency-Token
- telegram: X-Telegram-Bot-Api-Secret-Token equals the secret; dedup $.body.update_id

Timestamps (ASCII digits only) too old *or* too far in the future are refused, checked
once, with the source's ``tolerance_s`` (0: the age is not checked). Messages say which
check failed, never what was expected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from datetime import UTC, datetime
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


_UNIX_TS = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() accepts "²"


def parse_timestamp(ts_text: str, what: str) -> int:
    """A Unix timestamp header as an int: ASCII decimal digits only (at most 12, so no
    overflow); anything else (``²``, ``١٢``, ``1e9``, ``-5``) is a VerificationError."""
    text = ts_text.strip()
    if not _UNIX_TS.fullmatch(text):
        raise VerificationError(f"{what} is not a Unix timestamp (ASCII digits)")
    return int(text)


def tolerance(spec: VerifySpec, scheme: str) -> int:
    """The source's ``tolerance_s``, or the scheme's default when unset; 0 means the
    age of the timestamp is not checked (it is still signed)."""
    if spec.tolerance_s is None:
        return DEFAULT_TOLERANCE_S.get(scheme, 300)
    return spec.tolerance_s


def _check_age(ts_text: str, spec: VerifySpec, scheme: str, what: str) -> int:
    """The timestamp (ASCII digits), refused when older or further in the future than the
    tolerance -- the one timestamp check every timed scheme makes."""
    ts = parse_timestamp(ts_text, what)
    limit = tolerance(spec, scheme)
    if limit == 0:
        return ts
    skew = int(time.time()) - ts
    if skew > limit:
        raise VerificationError(f"{what} is {int(skew)} s old (tolerance {limit} s)")
    if skew < -limit:
        raise VerificationError(f"{what} is {int(-skew)} s in the future "
                                f"(tolerance {limit} s)")
    return ts


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


def _standard_signatures(header_value: str) -> list[bytes]:
    """The v1 signatures in a ``webhook-signature`` list (space-separated
    ``version,base64`` entries). Entries not understood -- another version, no comma,
    not base64 -- are skipped, as the reference libraries do."""
    found = []
    for entry in header_value.split(" "):
        version, sep, sig = entry.partition(",")
        if not sep or version != "v1":
            continue
        try:
            found.append(base64.b64decode(sig))  # as lenient as the library's verify
        except ValueError:  # binascii.Error: bad padding
            continue
    return found


def verify_standard(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    """Standard Webhooks (also Svix's ``svix-*`` header names): HMAC-SHA256 of
    ``id.timestamp.body`` with the base64 key (``whsec_`` prefix optional), computed by
    the standardwebhooks library's own ``sign``. The timestamp is checked here, once,
    with the source's tolerance -- not by the library's ``verify``, which would add its
    own fixed 5-minute window."""
    from standardwebhooks.webhooks import Webhook

    hdrs = dict(req.headers)
    for name in ("id", "timestamp", "signature"):
        if f"webhook-{name}" not in hdrs and f"svix-{name}" in hdrs:
            hdrs[f"webhook-{name}"] = hdrs[f"svix-{name}"]
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        if not hdrs.get(name):
            raise VerificationError(f"missing {name} header")
    ts = _check_age(hdrs["webhook-timestamp"], spec, "standard", "webhook-timestamp")
    given = _standard_signatures(hdrs["webhook-signature"])
    if not given:
        raise VerificationError("webhook-signature header has no v1,<base64> signature")
    try:
        wh = Webhook(secret)
    except Exception:  # not base64 (binascii.Error), or decodes to nothing
        raise VerificationError("source cannot verify requests: its verify secret is not a "
                                "Standard Webhooks key (base64, optionally whsec_-prefixed)"
                                ) from None
    try:
        text = req.body.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("webhook body is not UTF-8 (Standard Webhooks signs the "
                                "body as text)") from None
    try:
        when = datetime.fromtimestamp(ts, UTC)
    except (ValueError, OverflowError, OSError):  # past year 9999 (with tolerance_s: 0)
        raise VerificationError("webhook-timestamp is out of range") from None
    # sign() formats the timestamp from the datetime: the same digits as the header
    signed = wh.sign(hdrs["webhook-id"], when, text)
    expected = base64.b64decode(signed.partition(",")[2])
    if not any(hmac.compare_digest(expected, sig) for sig in given):
        raise VerificationError("webhook-signature does not match the body")


def verify_shopify(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    given = header(req, "X-Shopify-Hmac-Sha256").strip()
    if not _same(given, base64.b64encode(_hmac(secret, req.body)).decode()):
        raise VerificationError("X-Shopify-Hmac-Sha256 does not match the body")


def _twilio_urls(url: str) -> list[str]:
    """The URL as received, with its port and without it (Twilio signs whichever form it
    was configured with): the candidates the twilio SDK's RequestValidator tries -- the
    default port added when there is none, any port removed when there is one."""
    u = urlsplit(url)
    try:
        port = u.port
    except ValueError:  # not a number: leave the URL as it is
        return [url]
    if port is None:
        default = 443 if u.scheme == "https" else 80
        with_port, without = urlunsplit(u._replace(netloc=f"{u.netloc}:{default}")), url
    else:
        with_port = url
        without = urlunsplit(u._replace(netloc=u.netloc[: u.netloc.rfind(":")]))
    return list(dict.fromkeys([url, with_port, without]))


TWILIO_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
_TWILIO_ALGORITHMS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}


def _twilio_algorithm(req: IncomingRequest) -> str:
    """The hash Twilio signed with: ``algorithm=`` in X-Twilio-Webhooks-Signature-Settings
    (``key=<shared key id>,algorithm=HMAC_SHA256``), HMAC_SHA1 without it -- read as the
    twilio SDK's get_signature_algorithm reads it."""
    settings = req.headers.get(TWILIO_SETTINGS_HEADER.lower(), "")
    name = "HMAC_SHA1"
    for part in settings.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() == "algorithm" and value.strip():
            name = value.strip()
            break
    algo = _TWILIO_ALGORITHMS.get(name.upper())
    if algo is None:
        raise VerificationError(f"{TWILIO_SETTINGS_HEADER} names an unsupported algorithm "
                                f"{name[:40]!r} (HMAC_SHA1 or HMAC_SHA256)")
    return algo


def _twilio_params(form: bytes) -> str:
    """The signed string of a form's parameters, as the SDK builds it: names sorted, each
    name's distinct values sorted, ``name + value`` concatenated."""
    values: dict[str, set[str]] = {}
    for k, v in parse_qsl(form.decode("utf-8", "replace"), keep_blank_values=True):
        values.setdefault(k, set()).add(v)
    return "".join(k + v for k in sorted(values) for v in sorted(values[k]))


def verify_twilio(spec: VerifySpec, req: IncomingRequest, secret: str) -> None:
    given = header(req, "X-Twilio-Signature").strip()
    algo = _twilio_algorithm(req)
    query = dict(parse_qsl(urlsplit(req.full_url()).query, keep_blank_values=True))
    params = ""
    if "bodySHA256" in query:  # JSON body: the URL alone is signed, the body by hash
        if not _same(hashlib.sha256(req.body).hexdigest(), query["bodySHA256"].lower()):
            raise VerificationError("body does not match the bodySHA256 query parameter")
    elif media_type(req.content_type) == "application/x-www-form-urlencoded":
        # the same test (case-insensitive, parameters ignored) that parses it as a form
        params = _twilio_params(req.body)
    elif req.body.strip():
        # the signature covers the URL only: a body not hashed into it is unauthenticated
        raise VerificationError("a Twilio request with a non-form body must carry the "
                                "bodySHA256 query parameter (the body is not signed "
                                "otherwise)")
    for url in _twilio_urls(req.full_url()):
        digest = base64.b64encode(_hmac(secret, (url + params).encode(), algo)).decode()
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

