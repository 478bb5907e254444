"""Per-conversation memory: a JSON mapping per key, with an optional expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.ids import utcnow
from engine.store.db import session_scope
from engine.store.models import ConversationState

MAX_KEY_LEN = 255


class StateStore:
    def __init__(self, db: Engine):
        self.db = db

    def get(self, key: str) -> dict[str, Any]:
        """The stored mapping for ``key``; empty when absent or expired."""
        with Session(self.db) as s:
            row = s.get(ConversationState, str(key)[:MAX_KEY_LEN])
        if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
            return {}
        return dict(row.data)

    def merge(
        self, key: str, changes: dict[str, Any], ttl_s: float | None = None
    ) -> dict[str, Any]:
        """Merge ``changes`` into the mapping (a None value deletes the field); a TTL
        restarts the expiry clock. Returns the new mapping."""
        key = str(key)[:MAX_KEY_LEN]
        if not changes and not ttl_s:
            return self.get(key)  # a read: leave no row behind, keep the expiry clock
        now = utcnow()
        with session_scope(self.db) as s:
            row = s.get(ConversationState, key, with_for_update=True)
            data: dict[str, Any] = {}
            live = row is not None and (row.expires_at is None or row.expires_at > now)
            if live:
                data = dict(row.data)  # type: ignore[union-attr]
            for k, v in changes.items():
                if v is None:
                    data.pop(k, None)
                else:
                    data[k] = v
            expires = now + timedelta(seconds=ttl_s) if ttl_s else None
            if row is None:
                s.add(ConversationState(key=key, data=data, expires_at=expires, updated_at=now))
            else:
                row.data = data
                # a TTL restarts the clock; an expired row starts afresh without one
                row.expires_at = expires if (ttl_s or not live) else row.expires_at
                row.updated_at = now
                s.add(row)
        return data
