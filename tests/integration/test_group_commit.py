"""Group commit at ingest (engine.store.event_writer.EventWriter): requests that arrive
together share
one transaction and one Redis round trip, yet each returns only once its own row is
committed, and each gets its own answer (stored, duplicate, or not stored)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from engine.broker import inbox
from engine.errors import DuplicateEvent, StorageError
from engine.ids import new_id, utcnow
from engine.store.event_writer import EventWriter

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def row(dedup: str | None = None) -> dict[str, Any]:
    return {"id": new_id("evt"), "source": "s", "received_at": utcnow(), "method": "POST",
            "content_type": "application/json", "headers": {}, "query": {}, "body": {"n": 1},
            "raw_body": b'{"n": 1}', "dedup_key": dedup}


class Gate:
    """An engine getter that holds the writer thread at its first commit until opened,
    so the rows handed in meanwhile must form the next batch."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.opened = threading.Event()
        self.reached = threading.Event()

    def __call__(self) -> Any:
        self.reached.set()
        self.opened.wait(10)
        return self.engine


def write_all(writer: EventWriter, rows: list[dict[str, Any]], gate: Gate) -> list[Any]:
    """Write ``rows[0]`` alone, then the rest while the writer is held at the gate."""
    def one(r: dict[str, Any]) -> Any:
        try:
            return writer.write(r)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(rows)) as pool:
        first = pool.submit(one, rows[0])
        assert gate.reached.wait(10)
        rest = [pool.submit(one, r) for r in rows[1:]]
        while writer.waiting < len(rows) - 1:  # all handed in, none written
            threading.Event().wait(0.01)
        assert not first.done()  # nothing returns before its commit
        gate.opened.set()
        return [first.result(10), *(f.result(10) for f in rest)]


def stored_ids(rt: Any) -> set[str]:
    with rt.db.connect() as c:
        return {r[0] for r in c.execute(text("select id from events"))}


def test_rows_waiting_together_share_one_transaction_and_one_push(rt):  # type: ignore[no-untyped-def]
    gate = Gate(rt.db)
    pushed: list[list[str]] = []
    writer = EventWriter(gate, push=pushed.append)
    rows = [row() for _ in range(12)]
    answers = write_all(writer, rows, gate)
    assert answers == [True] * 12  # stored and queued, each
    assert stored_ids(rt) == {r["id"] for r in rows}
    assert (writer.batches, writer.rows) == (2, 12)  # the first alone, then the other 11
    assert [len(p) for p in pushed] == [1, 11]


def test_a_duplicate_in_a_batch_gets_its_own_answer(rt):  # type: ignore[no-untyped-def]
    gate = Gate(rt.db)
    writer = EventWriter(gate)
    rows = [row("k-0"), row("k-1"), row("k-1"), row("k-2"), row("k-0")]
    answers = write_all(writer, rows, gate)
    assert answers[0] is False and answers[1] is False and answers[3] is False  # no push
    assert isinstance(answers[2], DuplicateEvent) and answers[2].event_id == rows[1]["id"]
    assert isinstance(answers[4], DuplicateEvent) and answers[4].event_id == rows[0]["id"]
    assert stored_ids(rt) == {rows[0]["id"], rows[1]["id"], rows[3]["id"]}


def test_database_unreachable_fails_every_row_of_the_batch(rt, tmp_path):  # type: ignore[no-untyped-def]
    dead = create_engine(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    gate = Gate(dead)
    writer = EventWriter(gate, push=lambda ids: pytest.fail("pushed unstored events"))
    try:
        answers = write_all(writer, [row() for _ in range(4)], gate)
    finally:
        dead.dispose()
    assert all(isinstance(a, StorageError) for a in answers), answers


def test_redis_down_still_stores_and_says_not_queued(rt):  # type: ignore[no-untyped-def]
    def push(ids: list[str]) -> None:
        raise inbox.QueueError("redis down")

    gate = Gate(rt.db)
    writer = EventWriter(gate, push=push)
    rows = [row() for _ in range(3)]
    answers = write_all(writer, rows, gate)
    assert answers == [False] * 3
    assert stored_ids(rt) == {r["id"] for r in rows}


def test_concurrent_posts_through_ingest_are_each_stored_and_queued(rt, client):  # type: ignore[no-untyped-def]
    from engine.store.rule_files import apply_paths

    f = rt.settings.data_dir / "s.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("sources: [{slug: s, dedup: {header: X-Id}}]")
    apply_paths(rt.catalog, [f])
    from web import create_app

    app = create_app(runtime=rt)

    def post(n: int) -> tuple[int, dict[str, Any]]:
        c = app.test_client()
        resp = c.post("/hooks/s", json={"n": n}, headers={"X-Id": f"d-{n % 20}"})
        return resp.status_code, resp.get_json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(60)))
    fresh = [a for s, a in answers if s == 202]
    dups = [a for s, a in answers if s == 200]
    assert len(fresh) == 20 and len(dups) == 40, answers  # one stored per dedup key
    assert {a["event_id"] for a in dups} <= {a["event_id"] for a in fresh}
    assert stored_ids(rt) == {a["event_id"] for a in fresh}
    queued = inbox.pending_ids(rt.redis, rt.queue.name)
    assert queued == {a["event_id"] for a in fresh}

