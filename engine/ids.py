"""Ids and clocks shared by every stage: time-sortable ids and aware UTC time."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Aware UTC now (SQLModel's UTCDateTime stores and returns UTC on every dialect)."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A time-sortable id such as ``evt_0193a1b2c3d4e5f6a7b8c9d0e1f2``."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"
