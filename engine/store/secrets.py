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
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote, quote_plus

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from engine.errors import ConfigError, InvalidSecret, PermanentActionError, SecretNotFound
from engine.ids import utcnow
from engine.store.db import session_scope
from engine.store.models import Secret, Source
from rules.sandbox import DEFERRED_FILTERS
from rules.secret_refs import (
    SecretMisuse,
    SecretNamespace,
    SecretRefs,
    SecretRefused,
    display,
    holds_ref,
)

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
        self._verifying: tuple[float, dict[str, str]] = (0.0, {})

    def get_cached(self, name: str, ttl_s: float = CACHE_TTL_S) -> str:
        """``get`` with a short in-memory cache, for the ingest path (verify secrets)."""
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = self.get(name)
        self._cache[name] = (now + ttl_s, value)
        return value

    def verification_names(self, ttl_s: float = CACHE_TTL_S) -> dict[str, str]:
        """Secrets that verify incoming webhooks: name → the (first) source using it.
        Read at most every ``ttl_s`` seconds."""
        expires, names = self._verifying
        if expires > time.monotonic():
            return names
        with Session(self.db) as s:
            rows = s.exec(select(Source.slug, Source.spec).order_by(Source.slug)).all()
        names = {}
        for slug, spec in rows:
            verify = spec.get("verify") if isinstance(spec, dict) else None
            name = verify.get("secret") if isinstance(verify, dict) else None
            if isinstance(name, str) and name:
                names.setdefault(name, slug)
        self._verifying = (time.monotonic() + ttl_s, names)
        return names

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


SECRET_SINKS = frozenset({"webhook", "email", "db_write", "reply"})
"""Step types whose fields may carry a secret: they send it somewhere and store only the
reference. Others (state, set, emit, ...) would store the value where it can be read."""


class SecretsView(SecretNamespace):
    """``secrets`` in one step's templates: ``secrets.NAME`` decrypts the secret (once)
    and gives the template an opaque reference (``rules.secret_refs``); ``reveal`` puts
    the values into the rendered step for its action. ``used`` (name → value) is what
    outputs and errors are redacted against. Secrets that verify incoming webhooks are
    not usable here at all."""

    def __init__(self, store: SecretStore):
        self._store = store
        self._refs = SecretRefs()
        self.used: dict[str, str] = {}

    def lookup(self, name: str) -> str:
        source = self._store.verification_names().get(name)
        if source is not None:
            raise SecretRefused(
                f"secret {name!r} verifies the webhooks of source {source!r}, and "
                "verification secrets cannot be used in templates; store a copy under "
                "another name for outgoing calls")
        if name not in self.used:
            try:
                self.used[name] = self._store.get(name)
            except SecretNotFound:
                raise KeyError(name) from None
        return self._refs.ref(name)

    def __getitem__(self, name: str) -> str:
        try:
            return self.lookup(name)
        except SecretRefused as exc:
            raise PermanentActionError(str(exc)) from None

    def reveal(self, rendered: Any, step_type: str) -> Any:
        """The rendered step as its action gets it: the references of this rendering
        resolved to the secrets' values (PermanentActionError for a step type that
        cannot hold a secret, or a reference a template cut)."""
        if not len(self._refs) or not holds_ref(rendered):
            return rendered
        if step_type not in SECRET_SINKS:
            raise PermanentActionError(
                f"a {step_type} step cannot hold a secret (it would be stored where it can "
                "be read); secrets go only into webhook, email, db_write and reply steps")
        try:
            return self._refs.reveal(rendered, self.used.__getitem__, DEFERRED_FILTERS)
        except SecretMisuse as exc:
            raise PermanentActionError(str(exc)) from None


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
    """``value`` with secret references shown as ``[secret:NAME]`` and every occurrence
    of a secret value (and its encoded forms) inside strings replaced (what a receiver
    echoed back, an error message quoting a URL)."""
    value = display(value)
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
