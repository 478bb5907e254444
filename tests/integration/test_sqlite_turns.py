"""SQLite writers take turns (engine.store.sqlite_turns): a writer waits for the one before it
and starts the moment that one commits or rolls back; readers never wait; another
process's turn is respected; and a stuck turn slows writes down but never stops them."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from engine.store import sqlite_turns
from engine.store.db import make_engine


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    eng = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    with eng.begin() as c:
        c.execute(text("create table t (id integer primary key, v text)"))
    yield eng
    eng.dispose()


def count(db) -> int:  # type: ignore[no-untyped-def]
    with db.connect() as c:
        return int(c.execute(text("select count(*) from t")).scalar() or 0)


def in_thread(fn) -> tuple[threading.Thread, dict]:  # type: ignore[no-untyped-def]
    out: dict = {}

    def run() -> None:
        try:
            fn()
            out["done_at"] = time.monotonic()
        except Exception as exc:  # pragma: no cover - reported by the asserts
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_a_writer_waits_for_the_open_write_and_starts_when_it_ends(db, end):  # type: ignore[no-untyped-def]
    first = db.connect()
    tx = first.begin()
    first.execute(text("insert into t (v) values ('a')"))  # holds the turn

    def second() -> None:
        with db.begin() as c:
            c.execute(text("insert into t (v) values ('b')"))

    t, out = in_thread(second)
    time.sleep(0.4)
    assert "done_at" not in out and "error" not in out  # waiting its turn
    ended_at = time.monotonic()
    getattr(tx, end)()
    first.close()
    t.join(10)
    assert "error" not in out, out
    assert out["done_at"] - ended_at < 0.25  # handed over at once, not polled for
    assert count(db) == (2 if end == "commit" else 1)


def test_readers_do_not_wait_for_a_writer(db):  # type: ignore[no-untyped-def]
    first = db.connect()
    tx = first.begin()
    first.execute(text("insert into t (v) values ('a')"))
    t, out = in_thread(lambda: count(db))
    t.join(5)
    assert "done_at" in out, "a read waited for the writer"
    tx.commit()
    first.close()


def test_a_failed_write_gives_the_turn_back(db):  # type: ignore[no-untyped-def]
    with db.begin() as c:
        c.execute(text("insert into t (id, v) values (1, 'a')"))
    with pytest.raises(IntegrityError), db.begin() as c:
        c.execute(text("insert into t (id, v) values (1, 'dup')"))

    def write() -> None:
        with db.begin() as c:
            c.execute(text("insert into t (v) values ('after')"))

    t, out = in_thread(write)  # another thread: it would wait forever on a kept turn
    t.join(5)
    assert "done_at" in out and "error" not in out, out
    assert count(db) == 2


def test_another_process_turn_is_respected(db, tmp_path):  # type: ignore[no-untyped-def]
    """Another process mid-write holds the flock on the lock file: we wait for it."""
    lock = Path(os.path.realpath(tmp_path / "turns.db")).with_name("turns.db.write-lock")
    other = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        def write() -> None:
            with db.begin() as c:
                c.execute(text("insert into t (v) values ('x')"))

        t, out = in_thread(write)
        time.sleep(0.4)
        assert "done_at" not in out
        fcntl.flock(other, fcntl.LOCK_UN)
        t.join(10)
        assert "done_at" in out and "error" not in out, out
    finally:
        os.close(other)
    assert count(db) == 1


def test_a_stuck_turn_slows_writes_but_never_stops_them(db, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sqlite_turns, "WAIT_S", 0.5)
    lock = Path(os.path.realpath(tmp_path / "turns.db")).with_name("turns.db.write-lock")
    other = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)  # never given back
    try:
        started = time.monotonic()
        with db.begin() as c:
            c.execute(text("insert into t (v) values ('x')"))
        waited = time.monotonic() - started
    finally:
        os.close(other)
    assert 0.4 < waited < 5
    assert count(db) == 1
