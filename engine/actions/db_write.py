"""The ``db_write`` action: insert or upsert one row into an existing table.

``rendered`` fields (templates already rendered):

    connection  "default" (the engine's own database, ``ctx.db``) or the name of a stored
                secret whose value is a SQLAlchemy URL (``ctx.resolve_secret``); engines
                for named connections are cached in ``ctx.engines`` by URL
    table       ``name`` or ``schema.name``; it must exist (it is reflected, never created);
                never one of Hookwise's own tables in a database that holds Hookwise's
                schema, whichever connection reaches it (the default one always does)
    mode        insert (default) | upsert
    key         column(s) identifying the row for upsert (a list, or one name)
    values      mapping of column name to value

No SQL is ever built from user text: the table and its columns come from reflection,
values are bound parameters. Rendered strings are coerced to the column's Python type
when that is unambiguous (``"1500"`` → 1500 for INTEGER, ISO strings for dates,
``"true"``/``"false"`` for BOOLEAN, ``""`` → NULL for non-text columns).

Output: ``{"rowcount", "table", "mode"}``. Classification: unknown table or column, a
value that cannot be coerced, an integrity or data error, a statement the database
refuses → permanent; an unreachable, locked or overloaded database → transient.

A named connection to a SQLite file is refused unless the file exists inside a directory
of ``HOOKWISE_DB_WRITE_SQLITE_DIRS`` (SQLite would otherwise create any file it is
pointed at, anywhere the worker may write).
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from engine.actions.base import StepContext
from engine.errors import PermanentActionError, TransientActionError

MODES = ("insert", "upsert")
_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})

_tables: weakref.WeakKeyDictionary[Engine, dict[tuple[str | None, str], sa.Table]] = (
    weakref.WeakKeyDictionary()
)
_tables_lock = threading.Lock()
# per engine: does its database hold Hookwise's schema (its own tables)?
_hookwise_dbs: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()
# tables only a Hookwise database has together: the marker of "the engine's own database"
_HOOKWISE_MARKER = frozenset({"alembic_version", "api_tokens", "users", "events", "secrets"})
# SQLSTATE classes of a database that may answer later: connection exception, transaction
# rollback (serialization, deadlock), insufficient resources, operator intervention
_TRANSIENT_SQLSTATE = ("08", "40", "53", "57")
_TRANSIENT_SQLITE = ("locked", "busy", "unable to open", "disk i/o")


def run(rendered: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Write ``rendered["values"]`` into ``rendered["table"]``; return the row count."""
    mode = str(rendered.get("mode") or "insert").lower()
    if mode not in MODES:
        raise PermanentActionError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    values = rendered.get("values")
    if not isinstance(values, dict) or not values:
        raise PermanentActionError("values must be a non-empty mapping of column to value")
    raw_key = rendered.get("key") or []
    key = [raw_key] if isinstance(raw_key, str) else [str(k) for k in raw_key]
    if mode == "upsert":
        if not key:
            raise PermanentActionError("upsert needs key: the column(s) that identify a row")
        if missing := [k for k in key if k not in values]:
            raise PermanentActionError(f"key column(s) {', '.join(missing)} missing from values")
    table_name = str(rendered.get("table") or "").strip()
    if not table_name:
        raise PermanentActionError("db_write step needs a table")

    connection = str(rendered.get("connection") or "default")
    engine = _engine(connection, ctx)
    try:
        _refuse_own_table(engine, connection, table_name)
        table = _table_with_columns(engine, table_name, [*values, *key])
        row = {name: coerce(table.c[name], value) for name, value in values.items()}
        with engine.begin() as conn:
            rowcount = _write(conn, table, mode, key, row)
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        if not _is_transient(exc):
            raise PermanentActionError(
                f"the database refused writing {table_name}: {_reason(exc)}") from exc
        raise TransientActionError(f"database unreachable: {_reason(exc)}") from exc
    except sa_exc.IntegrityError as exc:
        raise PermanentActionError(f"integrity error writing {table_name}: {_reason(exc)}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise PermanentActionError(f"could not write {table_name}: {_reason(exc)}") from exc
    return {"rowcount": rowcount, "table": table_name, "mode": mode}


@functools.cache
def own_tables() -> frozenset[str]:
    """Hookwise's own tables (and Alembic's), which a step on the default connection
    must not write: a rule could otherwise forge events, users or secrets."""
    from engine.store.models import Event  # every table model shares its metadata

    return frozenset({*(t.name.lower() for t in Event.metadata.tables.values()),
                      "alembic_version"})


def _refuse_own_table(engine: Engine, connection: str, table_name: str) -> None:
    """Refuse Hookwise's own tables (and SQLite's catalogue) in a Hookwise database.

    What counts is the database reached, not the connection's name: a named connection
    whose URL is the engine's own database (or another Hookwise installation's) is
    refused the same as ``default``."""
    schema, name = _split(table_name)
    low = name.lower()
    if low.startswith("sqlite_") and engine.dialect.name == "sqlite":
        raise PermanentActionError(
            f"table {table_name!r} is SQLite's own catalogue: write to a table of your own")
    if low not in own_tables() or not _holds_hookwise(engine, connection):
        return
    raise PermanentActionError(
        f"table {table_name!r} is one of Hookwise's own tables (events, rules, secrets, "
        f"users, …) and connection {connection!r} reaches a Hookwise database: "
        "write to a table of your own")


def _holds_hookwise(engine: Engine, connection: str) -> bool:
    if connection == "default":
        return True
    with _tables_lock:
        known = _hookwise_dbs.get(engine)
    if known is None:
        names = {n.lower() for n in sa.inspect(engine).get_table_names()}
        known = _HOOKWISE_MARKER <= names
        with _tables_lock:
            _hookwise_dbs[engine] = known
    return known


def _is_transient(exc: sa_exc.DBAPIError) -> bool:
    """Whether the database may take the write later (down, locked, overloaded) rather
    than refusing the statement itself (a catalogue table, a read-only file, …)."""
    if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
        return True
    orig = exc.orig
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if code:
        return str(code).startswith(_TRANSIENT_SQLSTATE)
    text = str(orig or exc).lower()
    if "sqlite" in type(orig).__module__:
        return any(word in text for word in _TRANSIENT_SQLITE)
    return True  # no code to read (e.g. psycopg2 failing to connect): assume the network


def _engine(connection: str, ctx: StepContext) -> Engine:
    if connection == "default":
        return ctx.db
    try:
        url = ctx.resolve_secret(connection)
    except Exception as exc:  # the store's own errors: not set, cannot be decrypted
        raise PermanentActionError(f"connection {connection!r}: {exc}") from None
    if not url:
        raise PermanentActionError(f"connection {connection!r}: no stored secret of that name")
    engine = ctx.engines.get(url)
    if engine is None:
        try:
            engine = sa.create_engine(url, pool_pre_ping=True)
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError, ValueError) as exc:
            # never echo the URL: it usually holds a password
            raise PermanentActionError(
                f"connection {connection!r}: the secret is not a usable SQLAlchemy URL"
            ) from exc
        if engine.dialect.name == "sqlite":
            _check_sqlite_file(engine, connection, ctx.settings.db_write_sqlite_dirs)
        ctx.engines[url] = engine
    return engine


def _check_sqlite_file(engine: Engine, connection: str, allowed: tuple[str, ...]) -> None:
    database = engine.url.database or ""
    if database in ("", ":memory:") or engine.url.query.get("mode") == "memory":
        return  # an in-memory database touches no file
    if database.startswith("file:"):  # a URI filename (``?uri=true``)
        database = database[len("file:"):].split("?", 1)[0]
    path = os.path.realpath(database)
    dirs = [os.path.realpath(d) for d in allowed]
    if not any(os.path.commonpath([path, d]) == d for d in dirs):
        engine.dispose()
        where = ", ".join(dirs) if dirs else "none is set"
        raise PermanentActionError(
            f"connection {connection!r}: the SQLite file is outside HOOKWISE_DB_WRITE_SQLITE_DIRS "
            f"({where})")
    if not os.path.isfile(path):
        engine.dispose()
        raise PermanentActionError(
            f"connection {connection!r}: the SQLite file does not exist "
            "(db_write never creates one)")


def _split(table_name: str) -> tuple[str | None, str]:
    schema, _, name = table_name.rpartition(".")
    return (schema or None), name


def _reflect(engine: Engine, table_name: str, *, refresh: bool = False) -> sa.Table:
    """The reflected table, cached per engine; ``refresh`` re-reads it from the database."""
    schema, name = _split(table_name)
    with _tables_lock:
        cached = _tables.setdefault(engine, {})
        if not refresh and (schema, name) in cached:
            return cached[(schema, name)]
    if schema is not None and schema not in sa.inspect(engine).get_schema_names():
        raise PermanentActionError(f"schema {schema!r} of table {table_name!r} does not exist")
    try:
        table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=engine)
    except sa_exc.NoSuchTableError as exc:
        raise PermanentActionError(f"table {table_name!r} does not exist") from exc
    with _tables_lock:
        cached[(schema, name)] = table
    return table


def _table_with_columns(engine: Engine, table_name: str, columns: list[str]) -> sa.Table:
    """The table, re-reflected once if a column is missing (it may have been added since)."""
    table = _reflect(engine, table_name)
    if not [c for c in columns if c not in table.c]:
        return table
    table = _reflect(engine, table_name, refresh=True)
    if unknown := list(dict.fromkeys(c for c in columns if c not in table.c)):
        raise PermanentActionError(
            f"unknown column(s) {', '.join(unknown)} in table {table_name!r}; "
            f"its columns are: {', '.join(c.name for c in table.columns)}"
        )
    return table


def coerce(column: sa.Column, value: Any) -> Any:
    """``value`` converted to ``column``'s Python type when it is a string and the type is clear.

    Raises ``PermanentActionError`` naming the column and value when conversion fails.
    """
    if not isinstance(value, str):
        return value
    try:
        target = column.type.python_type
    except NotImplementedError:
        return value
    if target is str or not issubclass(target, bool | int | float | Decimal | date | time):
        return value
    text = value.strip()
    if text == "":
        return None
    try:
        return _convert(target, text)
    except (ValueError, ArithmeticError) as exc:
        raise PermanentActionError(
            f"column {column.name}: cannot store {value!r} as {target.__name__}"
        ) from exc


def _convert(target: type, text: str) -> Any:
    if target is bool:
        low = text.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError(text)
    if issubclass(target, int):
        try:
            return int(text)
        except ValueError:
            number = Decimal(text)  # "1500.0" is still an integer
            if number != number.to_integral_value():
                raise ValueError(text) from None
            return int(number)
    if issubclass(target, float):
        return float(text)
    if issubclass(target, Decimal):
        try:
            return Decimal(text)
        except InvalidOperation as exc:
            raise ValueError(text) from exc
    if issubclass(target, datetime):
        return datetime.fromisoformat(text)
    if issubclass(target, date):
        return date.fromisoformat(text[:10] if "T" in text else text)
    if issubclass(target, time):
        return time.fromisoformat(text)
    return text


def _write(conn: Connection, table: sa.Table, mode: str, key: list[str], row: dict) -> int:
    if mode == "insert":
        return conn.execute(sa.insert(table).values(row)).rowcount
    updates = {name: value for name, value in row.items() if name not in key}
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = (postgresql if dialect == "postgresql" else sqlite).insert
        stmt = insert(table).values(row)
        if updates:
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c[k] for k in key],
                set_={name: stmt.excluded[name] for name in updates},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=[table.c[k] for k in key])
        return conn.execute(stmt).rowcount
    # Portable fallback: update the row if it exists, else insert it (one transaction).
    match = sa.and_(*(table.c[k] == row[k] for k in key))
    if updates:
        count = conn.execute(sa.update(table).where(match).values(updates)).rowcount
        if count:
            return count
    elif conn.execute(sa.select(sa.func.count()).select_from(table).where(match)).scalar():
        return 0
    return conn.execute(sa.insert(table).values(row)).rowcount


def _reason(exc: sa_exc.SQLAlchemyError) -> str:
    """The database's own message, first line, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
