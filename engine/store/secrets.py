"""Stored secrets: encrypted at rest with a key derived from HOOKWISE_SECRET_KEY.

Rules name secrets (``secret: STRIPE_WHSEC``, ``{{ secrets.TOKEN }}``); values are only
decrypted where used and are redacted from every stored record.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, quote_plus

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from engine.errors import ConfigError, InvalidSecret, SecretNotFound
from engine.ids import utcnow
from engine.store.db import session_scope
from engine.store.models import Secret

REDACTED = "[redacted]"
CACHE_TTL_S = 5.0
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


def _fernet_key(secret_key: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())


def cipher(secret_key: str, old_keys: Iterable[str] = ()) -> MultiFernet:
    """Encrypt with the current key; decrypt with it or any older one (rotation)."""
    return MultiFernet([Fernet(_fernet_key(k)) for k in (secret_key, *old_keys)])


def value_problem(value: str) -> str | None:
    """Why ``value`` cannot be a secret (``"is empty"``, ``"is only whitespace"``), or
    None: anyone can sign with an empty key."""
    if not value:
        return "is empty"
    if not value.strip():
        return "is only whitespace"
    return None


class SecretStore:
    """Read and write encrypted secrets in the engine's database."""

    def __init__(self, db: Engine, secret_key: str, previous_keys: Iterable[str] = ()):
        self.db = db
        self._cipher = cipher(secret_key, previous_keys)
        self._cache: dict[str, tuple[float, str]] = {}

    def get_cached(self, name: str, ttl_s: float = CACHE_TTL_S) -> str:
        """``get`` with a short in-memory cache, for the ingest path (verify secrets)."""
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = self.get(name)
        self._cache[name] = (now + ttl_s, value)
        return value

    def set(self, name: str, value: str) -> None:
        """Store ``value`` under ``name`` (InvalidSecret naming the field when the name is
        malformed or the value is empty or only whitespace)."""
        if not re.match(NAME_PATTERN, name):
            raise InvalidSecret(
                "name",
                f"secret name {name!r} must be letters, digits and _ and start with a letter",
            )
        problem = value_problem(value)
        if problem is not None:
            raise InvalidSecret("value", f"secret {name}: the value {problem}")
        token = self._cipher.encrypt(value.encode())
        with session_scope(self.db) as s:
            row = s.exec(select(Secret).where(Secret.name == name)).first()
            if row is None:
                s.add(Secret(name=name, value_encrypted=token))
            else:
                row.value_encrypted = token
                row.updated_at = utcnow()
                s.add(row)
        self._cache.pop(name, None)

    def get(self, name: str) -> str:
        with Session(self.db) as s:
            row = s.exec(select(Secret).where(Secret.name == name)).first()
        if row is None:
            raise SecretNotFound(f"secret {name!r} is not set (hookwise secrets set {name})")
        try:
            return self._cipher.decrypt(row.value_encrypted).decode()
        except InvalidToken:
            raise ConfigError(
                f"secret {name!r} cannot be decrypted: HOOKWISE_SECRET_KEY changed"
            ) from None

    def problem(self, name: str) -> str | None:
        """Why the secret ``name`` cannot be used as a key (``"is not set"``, ``"is
        empty"``, ``"cannot be decrypted …"``), or None when it can."""
        try:
            return value_problem(self.get(name))
        except SecretNotFound:
            return "is not set"
        except ConfigError:
            return "cannot be decrypted: HOOKWISE_SECRET_KEY changed"

    def rotate(self) -> int:
        """Re-encrypt every secret with the current key (after HOOKWISE_SECRET_KEY
        changed and the old one moved to HOOKWISE_SECRET_KEY_PREVIOUS)."""
        with session_scope(self.db) as s:
            rows = list(s.exec(select(Secret)))
            for row in rows:
                try:
                    row.value_encrypted = self._cipher.rotate(row.value_encrypted)
                except InvalidToken:
                    raise ConfigError(
                        f"secret {row.name!r} cannot be decrypted with the current or "
                        "previous keys; nothing was rotated"
                    ) from None
                s.add(row)
        self._cache.clear()
        return len(rows)

    def names(self) -> list[str]:
        with Session(self.db) as s:
            return list(s.exec(select(Secret.name).order_by(Secret.name)))

    def entries(self) -> list[tuple[str, datetime, datetime]]:
        """``(name, created_at, updated_at)`` of every secret, by name; never values."""
        with Session(self.db) as s:
            rows = s.exec(select(Secret.name, Secret.created_at, Secret.updated_at)
                          .order_by(Secret.name))
            return [(n, c, u) for n, c, u in rows]

    def delete(self, name: str) -> bool:
        with session_scope(self.db) as s:
            row = s.exec(select(Secret).where(Secret.name == name)).first()
            if row is None:
                return False
            s.delete(row)
            return True


class SecretsView(Mapping[str, str]):
    """``secrets`` in templates: decrypts on first access and remembers what was used,
    so those values can be redacted from what is stored."""

    def __init__(self, store: SecretStore):
        self._store = store
        self.used: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self.used:
            try:
                self.used[name] = self._store.get(name)
            except SecretNotFound:
                raise KeyError(name) from None
        return self.used[name]

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"secret {name!r} is not set") from None

    def reveal(self, rendered: Any, step_type: str) -> Any:
        """The rendered step as its action gets it (the secrets it names, resolved)."""
        return rendered

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.names())

    def __len__(self) -> int:
        return len(self._store.names())


# Headers that carry credentials, redacted wherever a request is recorded: a webhook
# stored at ingest and a step's rendered request alike.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key",
                                "cookie", "x-auth-token", "x-telegram-bot-api-secret-token"})


def _forms(value: str) -> set[str]:
    """A secret as it may appear after templating: as is, URL-encoded, JSON-escaped,
    base64."""
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1],
            base64.b64encode(value.encode()).decode().rstrip("=")}


def redact_headers(headers: Any) -> Any:
    """Credential headers keep only their scheme word (``Basic [redacted]``): a value
    derived from a secret (``base64(user:password)``) cannot be recognised otherwise."""
    if not isinstance(headers, dict):
        return headers
    out = {}
    for k, v in headers.items():
        if str(k).lower() in CREDENTIAL_HEADERS and isinstance(v, str) and v:
            scheme, _, rest = v.partition(" ")
            v = f"{scheme} {REDACTED}" if rest and scheme.isalpha() else REDACTED
        out[k] = v
    return out


def redact(value: Any, secret_values: Iterable[str]) -> Any:
    """Replace every occurrence of a secret value (and its encoded forms) inside strings
    of a JSON-like value."""
    needles = sorted({f for v in secret_values if v and len(v) >= 3 for f in _forms(v)
                      if len(f) >= 3}, key=len, reverse=True)
    if not needles:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for n in needles:
                if n in v:
                    v = v.replace(n, REDACTED)
            return v
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)
