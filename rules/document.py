"""The event document: what conditions and templates see of an event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def build_event_document(
    body: Any,
    headers: Mapping[str, Any] | None,
    query: Mapping[str, Any] | None,
    event: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The document conditions and templates see; header names are lower-cased."""
    return {
        "body": body,
        "headers": {str(k).lower(): v for k, v in (headers or {}).items()},
        "query": dict(query or {}),
        "event": dict(event or {}),
    }
