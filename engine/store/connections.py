"""Stored connections (``rules.connection_models.ConnectionSpec``), kept like sources.

Writes go through ``engine.store.catalog.Catalog`` (``save(..., connections=...)``,
``delete_connection``), which bump the rule-set version in the same transaction;
``lookup`` answers a connection by name for the webhook action from a table rebuilt
only when that version moved.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from engine.ids import utcnow
from engine.store.models import Connection, Source
from rules.connection_models import (
    SERVICE_DESTINATIONS,
    ConnectionSpec,
    dump_connection,
    parse_connection,
)
from rules.schema import DestinationSpec, parse_destination

_VERSION_SQL = text("SELECT value FROM meta WHERE key = 'ruleset_version'")


def upsert(s: Session, spec: ConnectionSpec) -> str:
    """Create or update ``spec``'s row in ``s``: ``created``, ``updated`` or
    ``unchanged``."""
    data = dump_connection(spec)
    row = s.exec(select(Connection).where(Connection.name == spec.name)).first()
    if row is None:
        s.add(Connection(name=spec.name, spec=data))
        return "created"
    if row.spec == data:
        return "unchanged"
    row.spec = data
    row.updated_at = utcnow()
    s.add(row)
    return "updated"


def list_rows(db: Engine) -> list[Connection]:
    with Session(db) as s:
        return list(s.exec(select(Connection).order_by(Connection.name)))  # type: ignore[arg-type]


def get_row(db: Engine, name: str) -> Connection | None:
    with Session(db) as s:
        return s.exec(select(Connection).where(Connection.name == name)).first()


class _Table:
    def __init__(self) -> None:
        self.version = -1
        self.specs: dict[str, ConnectionSpec] = {}
        self.verifying: dict[str, str] = {}  # secret name -> the source it verifies
        self.lock = threading.Lock()


_tables: weakref.WeakKeyDictionary[Any, _Table] = weakref.WeakKeyDictionary()
_tables_lock = threading.Lock()


def lookup(db: Engine, name: str) -> ConnectionSpec | None:
    """The stored connection ``name`` (None when there is none), from a per-engine table
    re-read when the rule-set version changed (one small query per call otherwise)."""
    return _table(db).specs.get(name)


def verified_by(db: Engine, secret: str) -> str | None:
    """The source whose webhooks ``secret`` verifies, if any: such a secret is not sent
    out through a connection (as it is not usable in templates)."""
    return _table(db).verifying.get(secret)


def _table(db: Engine) -> _Table:
    with _tables_lock:
        table = _tables.get(db)
        if table is None:
            table = _tables[db] = _Table()
    with db.connect() as conn:
        version = int(conn.execute(_VERSION_SQL).scalar() or 0)
    if version != table.version:
        with table.lock:
            if version != table.version:
                table.specs = {r.name: parse_connection(r.spec) for r in list_rows(db)}
                table.verifying = _verification_names(db)
                table.version = version
    return table


def _verification_names(db: Engine) -> dict[str, str]:
    with Session(db) as s:
        rows = s.exec(select(Source.slug, Source.spec).order_by(Source.slug)).all()
    names: dict[str, str] = {}
    for slug, spec in rows:
        verify = spec.get("verify") if isinstance(spec, dict) else None
        secret = verify.get("secret") if isinstance(verify, dict) else None
        if isinstance(secret, str) and secret:
            names.setdefault(secret, slug)
    return names


_service_limits = {host: parse_destination(doc) for host, doc in SERVICE_DESTINATIONS.items()}


def service_destination(destination: str) -> DestinationSpec | None:
    """The default limits of a known service's host (``scheme://host:port``), for when no
    ``destinations:`` entry names it (``rules.connection_models.SERVICE_DESTINATIONS``)."""
    host = destination.split("://", 1)[-1].rsplit(":", 1)[0].lower()
    return _service_limits.get(host)
