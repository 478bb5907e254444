"""Destinations: where outgoing calls go, as ``scheme://host:port``.

Shares of a worker's delivery threads, circuit breakers and rate limits are kept per
destination (Svix, Convoy and Hookdeck isolate endpoints the same way), so one slow or
failing receiver never holds up the others.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def destination_of(url: object) -> str | None:
    """``https://api.example:443`` for any URL on that scheme, host and port; None when
    the URL has no http(s) host (the action refuses it with the reason)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return f"{scheme}://{parts.hostname.lower()}:{port or DEFAULT_PORTS[scheme]}"
