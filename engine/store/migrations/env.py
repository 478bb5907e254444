"""Alembic environment: runs Hookwise's migrations against the configured URL."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import engine.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from engine.store.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    eng = make_engine(url)
    with eng.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    eng.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
