"""The db_write action on SQLite and PostgreSQL (real databases, throwaway tables)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.actions import db_write
from engine.actions.base import StepContext
from engine.errors import PermanentActionError, TransientActionError
from engine.settings import Settings

PG_URL = os.environ.get(
    "HOOKWISE_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def _pg_unreachable_reason() -> str | None:
    if not PG_URL.startswith("postgresql"):
        return f"HOOKWISE_TEST_DATABASE_URL is not PostgreSQL ({PG_URL.split(':')[0]})"
    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return f"PostgreSQL at {engine.url.render_as_string()} unreachable: {first}"
    finally:
        engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'w.db'}")
    else:
        if reason := _pg_unreachable_reason():
            pytest.skip(reason)
        engine = sa.create_engine(PG_URL)
    yield engine
    engine.dispose()


@pytest.fixture
def payments(db: Engine) -> Iterator[str]:
    """A fresh payments-like table with a unique name, dropped afterwards."""
    name = f"payments_{uuid.uuid4().hex[:10]}"
    meta = sa.MetaData()
    table = sa.Table(
        name,
        meta,
        sa.Column("payment_id", sa.String(64), primary_key=True),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("rate", sa.Float),
        sa.Column("paid", sa.Boolean),
        sa.Column("paid_at", sa.DateTime),
        sa.Column("note", sa.Text),
        sa.Column("email", sa.String(200), unique=True),
    )
    meta.create_all(db)
    yield name
    table.drop(db, checkfirst=True)


@pytest.fixture
def make_ctx(tmp_path: Path, db: Engine) -> Iterator[Callable[..., StepContext]]:
    client = httpx.Client()
    contexts: list[StepContext] = []

    sqlite_dirs = [str(tmp_path)]
    if db.dialect.name == "sqlite":
        sqlite_dirs.append(str(Path(db.url.database or "").parent))

    def make(secrets: dict[str, str] | None = None,
             resolve: Callable[[str], str] | None = None) -> StepContext:
        ctx = StepContext(
            settings=Settings.from_env(
                {"HOOKWISE_DATA_DIR": str(tmp_path), "HOOKWISE_SECRET_KEY": "x",
                 "HOOKWISE_DB_WRITE_SQLITE_DIRS": os.pathsep.join(sqlite_dirs)}
            ),
            execution_id="ex1",
            step_id="save",
            attempt=1,
            http=client,
            db=db,
            resolve_secret=resolve or (lambda name: (secrets or {}).get(name, "")),
        )
        contexts.append(ctx)
        return ctx

    yield make
    client.close()
    for ctx in contexts:
        for engine in ctx.engines.values():
            engine.dispose()


def rows(db: Engine, table: str) -> list[dict]:
    t = sa.Table(table, sa.MetaData(), autoload_with=db)
    cols = [c for c in t.c if c.name != "price"]  # Decimal on SQLite warns; checked apart
    with db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(*cols).order_by(t.c.payment_id))]


def test_insert_with_coercion(db: Engine, payments: str, make_ctx):
    out = db_write.run(
        {
            "connection": "default",
            "table": payments,
            "mode": "insert",
            "values": {
                "payment_id": "pi_1",
                "amount": "1500",
                "price": "15.25",
                "rate": "0.5",
                "paid": "true",
                "paid_at": "2024-05-01T12:30:00",
                "note": "first",
            },
        },
        make_ctx(),
    )
    assert out == {"rowcount": 1, "table": payments, "mode": "insert"}
    [row] = rows(db, payments)
    assert row["amount"] == 1500
    assert row["rate"] == 0.5
    assert row["paid"] is True
    assert row["paid_at"] == datetime(2024, 5, 1, 12, 30)
    with db.connect() as conn:
        price = conn.execute(sa.text(f'SELECT price FROM "{payments}"')).scalar_one()
    assert Decimal(str(price)) == Decimal("15.25")


def test_upsert_updates_existing_row(db: Engine, payments: str, make_ctx):
    step = {"table": payments, "mode": "upsert", "key": ["payment_id"]}
    first = {"payment_id": "pi_2", "amount": 100, "note": "created"}
    db_write.run({**step, "values": first}, make_ctx())
    out = db_write.run(
        {**step, "values": {"payment_id": "pi_2", "amount": "250", "note": "updated"}}, make_ctx()
    )
    assert out["rowcount"] == 1 and out["mode"] == "upsert"
    [row] = rows(db, payments)
    assert (row["amount"], row["note"]) == (250, "updated")
    db_write.run({**step, "values": {"payment_id": "pi_3", "amount": 1}}, make_ctx())
    assert [r["payment_id"] for r in rows(db, payments)] == ["pi_2", "pi_3"]


def test_sql_injection_looking_values_are_stored_verbatim(db: Engine, payments: str, make_ctx):
    evil = "x'); DROP TABLE payments;--"
    evil_id = f'{payments}"; DROP TABLE "{payments}"; --'
    db_write.run(
        {"table": payments, "values": {"payment_id": evil_id, "amount": 1, "note": evil}},
        make_ctx(),
    )
    assert sa.inspect(db).has_table(payments)
    [row] = rows(db, payments)
    assert (row["payment_id"], row["note"]) == (evil_id, evil)


def test_unknown_table(payments: str, make_ctx):
    with pytest.raises(PermanentActionError, match="table 'no_such_table_x' does not exist"):
        db_write.run({"table": "no_such_table_x", "values": {"a": 1}}, make_ctx())


def test_table_name_is_not_sql(payments: str, make_ctx):
    with pytest.raises(PermanentActionError, match="does not exist"):
        db_write.run({"table": f"{payments}; DROP TABLE x", "values": {"a": 1}}, make_ctx())


def test_unknown_columns_are_named_with_the_table_columns(payments: str, make_ctx):
    with pytest.raises(PermanentActionError) as info:
        db_write.run(
            {"table": payments, "values": {"payment_id": "p", "amount": 1, "bogus": 1, "x": 2}},
            make_ctx(),
        )
    message = str(info.value)
    assert "unknown column(s) bogus, x" in message
    assert "payment_id, amount, price, rate, paid, paid_at, note, email" in message


def test_column_added_after_first_write_is_seen(db: Engine, payments: str, make_ctx):
    db_write.run({"table": payments, "values": {"payment_id": "a", "amount": 1}}, make_ctx())
    with db.begin() as conn:
        conn.execute(sa.text(f'ALTER TABLE "{payments}" ADD COLUMN late TEXT'))
    db_write.run(
        {"table": payments, "values": {"payment_id": "b", "amount": 2, "late": "yes"}}, make_ctx()
    )
    assert rows(db, payments)[1]["late"] == "yes"


@pytest.mark.parametrize(
    ("column", "value"),
    [("amount", "12abc"), ("amount", "1.5"), ("paid", "maybe"), ("paid_at", "yesterday")],
)
def test_uncoercible_value_names_column_and_value(payments: str, make_ctx, column, value):
    values = {"payment_id": "p", "amount": 1, column: value}
    with pytest.raises(PermanentActionError, match=f"column {column}: cannot store '{value}'"):
        db_write.run({"table": payments, "values": values}, make_ctx())


def test_integrity_error_is_permanent(payments: str, make_ctx):
    db_write.run({"table": payments, "values": {"payment_id": "dup", "amount": 1}}, make_ctx())
    with pytest.raises(PermanentActionError, match="integrity error"):
        db_write.run({"table": payments, "values": {"payment_id": "dup", "amount": 2}}, make_ctx())
    with pytest.raises(PermanentActionError, match="integrity error"):
        db_write.run({"table": payments, "values": {"payment_id": "nul"}}, make_ctx())


@pytest.mark.parametrize(
    ("rendered", "match"),
    [
        ({"mode": "merge", "values": {"a": 1}}, "mode must be one of"),
        ({"values": {}}, "non-empty mapping"),
        ({"mode": "upsert", "values": {"amount": 1}}, "upsert needs key"),
        ({"mode": "upsert", "key": ["payment_id"], "values": {"amount": 1}}, "missing from"),
    ],
)
def test_bad_step_is_permanent(payments: str, make_ctx, rendered: dict, match: str):
    with pytest.raises(PermanentActionError, match=match):
        db_write.run({"table": payments, **rendered}, make_ctx())


def test_named_connection_via_resolve_secret(db: Engine, payments: str, make_ctx):
    url = db.url.render_as_string(hide_password=False)
    ctx = make_ctx({"WAREHOUSE": url})
    out = db_write.run(
        {"connection": "WAREHOUSE", "table": payments, "values": {"payment_id": "w", "amount": 9}},
        ctx,
    )
    assert out["rowcount"] == 1
    assert list(ctx.engines) == [url]
    assert ctx.engines[url] is not db
    assert rows(db, payments)[0]["amount"] == 9


def test_unknown_named_connection(payments: str, make_ctx):
    with pytest.raises(PermanentActionError, match="no stored secret"):
        db_write.run({"connection": "NOPE", "table": payments, "values": {"a": 1}}, make_ctx())


def test_bad_connection_url_does_not_leak_it(payments: str, make_ctx):
    ctx = make_ctx({"BAD": "notadialect://user:hunter2@host/db"})
    with pytest.raises(PermanentActionError) as info:
        db_write.run({"connection": "BAD", "table": payments, "values": {"a": 1}}, ctx)
    assert "hunter2" not in str(info.value)


def test_unreachable_database_is_transient(payments: str, make_ctx, db: Engine):
    from tests.servers import free_port

    if db.dialect.name == "sqlite":
        pytest.skip("a SQLite file that is not there is refused, not retried (test below)")
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test"
    ctx = make_ctx({"DOWN": url})
    with pytest.raises(TransientActionError, match="database unreachable"):
        db_write.run({"connection": "DOWN", "table": payments, "values": {"a": 1}}, ctx)


def test_schema_qualified_table(db: Engine, make_ctx):
    if db.dialect.name != "postgresql":
        pytest.skip("schemas are a PostgreSQL feature")
    schema = f"s_{uuid.uuid4().hex[:8]}"
    with db.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".items (id INTEGER PRIMARY KEY, n INT)'))
    try:
        step = {"table": f"{schema}.items", "mode": "upsert", "key": ["id"]}
        db_write.run({**step, "values": {"id": "1", "n": "1"}}, make_ctx())
        db_write.run({**step, "values": {"id": "1", "n": "2"}}, make_ctx())
        with db.connect() as conn:
            got = conn.execute(sa.text(f'SELECT id, n FROM "{schema}".items')).all()
        assert [tuple(r) for r in got] == [(1, 2)]
    finally:
        with db.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def test_coerce_leaves_non_strings_and_text_alone():
    col = sa.Column("n", sa.Integer)
    assert db_write.coerce(col, 5) == 5
    assert db_write.coerce(col, "") is None
    assert db_write.coerce(col, " 42 ") == 42
    assert db_write.coerce(col, "1500.0") == 1500
    assert db_write.coerce(sa.Column("t", sa.Text), " keep ") == " keep "
    assert db_write.coerce(sa.Column("j", sa.JSON), "{}") == "{}"


@pytest.mark.parametrize("table", ["users", "secrets", "EVENTS", "public.step_runs",
                                   "alembic_version", "api_tokens"])
def test_hookwises_own_tables_are_refused_on_the_default_connection(make_ctx, table):  # type: ignore[no-untyped-def]
    """A rule must not forge events, users, tokens or secrets through db_write."""
    with pytest.raises(PermanentActionError, match="one of Hookwise's own tables"):
        db_write.run({"table": table, "values": {"id": "x"}}, make_ctx())


# --- the own-table guard follows the database, not the connection's name (issue 12, item 3)

@pytest.fixture
def hookwise_db(tmp_path: Path, db: Engine) -> str:
    """The URL of a real Hookwise database (migrated to head) beside the test's data."""
    from engine.store.db import upgrade

    if db.dialect.name != "sqlite":
        pytest.skip("one Hookwise database per module is enough: the SQLite run covers it")
    url = f"sqlite:///{tmp_path / 'hookwise.db'}"
    upgrade(Settings.from_env({"HOOKWISE_DATA_DIR": str(tmp_path),
                               "HOOKWISE_SECRET_KEY": "x", "HOOKWISE_DATABASE_URL": url}))
    return url


@pytest.mark.parametrize("table", ["users", "api_tokens", "secrets", "Events"])
def test_a_named_connection_to_hookwises_database_cannot_write_its_tables(
        hookwise_db: str, make_ctx, table: str):  # type: ignore[no-untyped-def]
    """Before: a secret holding the engine's own URL wrote users and api_tokens."""
    ctx = make_ctx({"MINE": hookwise_db})
    with pytest.raises(PermanentActionError, match="reaches a Hookwise database"):
        db_write.run({"connection": "MINE", "table": table,
                      "values": {"id": "forged", "name": "x"}}, ctx)
    engine = sa.create_engine(hookwise_db)
    with engine.connect() as conn:
        count = conn.execute(sa.text(f"SELECT count(*) FROM {table.lower()}")).scalar()
    engine.dispose()
    assert count == 0


def test_a_users_table_in_a_database_of_ones_own_is_writable(tmp_path: Path, db: Engine,
                                                             make_ctx):  # type: ignore[no-untyped-def]
    if db.dialect.name != "sqlite":
        pytest.skip("SQLite file case")
    path = tmp_path / "crm.db"
    crm = sa.create_engine(f"sqlite:///{path}")
    with crm.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT)"))
    crm.dispose()
    out = db_write.run({"connection": "CRM", "table": "users",
                        "values": {"id": "u1", "name": "Ada"}}, make_ctx({"CRM": f"sqlite:///{path}"}))
    assert out["rowcount"] == 1


def test_sqlite_catalogue_is_refused_permanently(db: Engine, make_ctx):  # type: ignore[no-untyped-def]
    """Before: writing sqlite_master was refused by SQLite but retried as transient."""
    if db.dialect.name != "sqlite":
        pytest.skip("SQLite's catalogue")
    url = db.url.render_as_string(hide_password=False)
    for connection, ctx in (("default", make_ctx()), ("SAME", make_ctx({"SAME": url}))):
        with pytest.raises(PermanentActionError, match="SQLite's own catalogue"):
            db_write.run({"connection": connection, "table": "sqlite_master",
                          "values": {"name": "x"}}, ctx)


def test_a_refused_statement_is_permanent_not_transient(tmp_path: Path, db: Engine, make_ctx):  # type: ignore[no-untyped-def]
    """An OperationalError that is the database refusing the statement (here: a read-only
    file) is not retried: only down, locked or overloaded databases are transient."""
    if db.dialect.name != "sqlite":
        pytest.skip("SQLite file case")
    path = tmp_path / "ro.db"
    ro = sa.create_engine(f"sqlite:///{path}")
    with ro.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id TEXT PRIMARY KEY)"))
    ro.dispose()
    ctx = make_ctx({"RO": f"sqlite:///file:{path}?mode=ro&uri=true"})
    with pytest.raises(PermanentActionError, match="refused writing t"):
        db_write.run({"connection": "RO", "table": "t", "values": {"id": "1"}}, ctx)


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_sqlite_url_to_a_missing_file_is_refused_and_not_created(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, make_ctx, where: str):  # type: ignore[no-untyped-def]
    """Before: a connection URL pointing at a new file created it."""
    base = tmp_path if where == "inside" else tmp_path_factory.mktemp("elsewhere")
    path = base / "new.db"
    ctx = make_ctx({"NEW": f"sqlite:///{path}"})
    match = "does not exist" if where == "inside" else "outside HOOKWISE_DB_WRITE_SQLITE_DIRS"
    with pytest.raises(PermanentActionError, match=match):
        db_write.run({"connection": "NEW", "table": "t", "values": {"id": "1"}}, ctx)
    assert not path.exists()


def test_a_connection_whose_secret_is_not_set_is_a_permanent_error_naming_it(
        hookwise_db: str, make_ctx):  # type: ignore[no-untyped-def]
    """Before: SecretNotFound escaped the action and was recorded as an internal error."""
    from engine.store.secrets import SecretStore

    engine = sa.create_engine(hookwise_db)
    try:
        store = SecretStore(engine, "x")
        ctx = make_ctx(resolve=store.get)
        with pytest.raises(PermanentActionError,
                           match="connection 'WAREHOUSE': secret 'WAREHOUSE' is not set"):
            db_write.run({"connection": "WAREHOUSE", "table": "t", "values": {"id": "1"}}, ctx)
    finally:
        engine.dispose()
