"""Checks made when a rule is saved that would otherwise fail only on a live event:
a webhook URL template whose fixed part is not an http(s) URL, and fields too large to
be a rule's (a 300 KB condition value, a 1 MB template)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

MAX_FIELD_BYTES = 64 * 1024
_TEMPLATE_START = re.compile(r"\{\{|\{%|\{#")
SCHEMES = ("http://", "https://")


def size_of(value: Any) -> int:
    """Bytes of ``value`` as UTF-8 (JSON for anything but a string)."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    try:
        return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))
    except (TypeError, ValueError, RecursionError):
        return 0


def _kb(n: int) -> str:
    return f"{n / 1024:,.0f} KB" if n >= 10 * 1024 else f"{n / 1024:,.1f} KB"


def check_size(value: Any, what: str = "this value") -> None:
    """ValueError when ``value`` is larger than MAX_FIELD_BYTES."""
    n = size_of(value)
    if n > MAX_FIELD_BYTES:
        raise ValueError(
            f"{what} is {_kb(n)}; a rule's field holds at most {MAX_FIELD_BYTES // 1024} KB "
            "(keep large data in the event or a database, and refer to it by path)")


def static_prefix(template: str) -> str:
    """The text before the first ``{{``, ``{%`` or ``{#``."""
    found = _TEMPLATE_START.search(template)
    return template if found is None else template[:found.start()]


def check_webhook_url(url: str, *, connection: str | None = None) -> None:
    """ValueError unless the fixed start of the URL template can be an http(s) URL.

    With a connection the URL is relative to its base URL, so only a different scheme is
    refused there; a URL that starts with a template (``{{ secrets.HOOK_URL }}``) is
    checked when it is rendered."""
    head = static_prefix(url).strip()
    shown = url if len(url) <= 80 else url[:77] + "…"
    if not head:
        return
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", head)
    if connection is not None:
        # an absolute URL would take the connection's credentials to another host: the
        # webhook action refuses it too (engine.outbound.connections.join_url)
        if scheme or head.startswith("//"):
            raise ValueError(f"url {shown!r} must be a path below connection "
                             f"{connection!r}'s base URL, not an absolute URL")
        return
    lowered = head.lower()
    if any(s.startswith(lowered) for s in SCHEMES) and len(lowered) < len("https://"):
        return  # "http{{ … }}": the rest comes from the template
    if not lowered.startswith(SCHEMES):
        why = (f"it starts with {scheme.group(1)}://, not http:// or https://" if scheme
               else "it does not start with http:// or https://")
        raise ValueError(f"url {shown!r} is not a web address: {why} (e.g. "
                         "https://example.com/hook, or a template such as "
                         "{{ secrets.HOOK_URL }})")
    if static_prefix(url) == url:  # wholly fixed: it must parse with a host
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname
        except ValueError as exc:
            raise ValueError(f"url {shown!r} is not a valid URL: {exc}") from None
        if not host or " " in parts.netloc:
            raise ValueError(f"url {shown!r} has no host name after {parts.scheme}://")
