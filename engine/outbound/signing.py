"""Signing outgoing webhooks with the Standard Webhooks scheme (as Svix does).

    webhook-id:        msg_<stable id>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

The secret follows the ``whsec_<base64 key>`` convention: the HMAC key is the
base64-decoded part after the prefix (see ``secret_key``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key bytes of a Standard Webhooks secret string.

    Decoded exactly as the reference ``standardwebhooks`` library does (prefix stripped,
    lenient base64), so its ``Webhook(secret).verify`` accepts what we sign; a secret
    that is not base64 at all falls back to its UTF-8 bytes.
    """
    raw = secret.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(raw + "==")
    except (binascii.Error, ValueError):
        key = b""
    return key or raw.encode()


def message_id(idempotency_key: str) -> str:
    """A stable ``msg_…`` id derived from the step's idempotency key (same across retries)."""
    digest = hashlib.sha256(idempotency_key.encode()).digest()[:18]
    return "msg_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent as message ``msg_id``."""
    key = secret_key(secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
