"""A worker SIGKILLed mid-``foreach`` (issue 15, item 2): a real ``python -m cli worker``
runs a foreach of 50 items, one call each to a loopback receiver; it is killed while the
call of item 37 is in flight. A second worker resumes the foreach at item 37: no earlier
item is called again, item 37 is called again with the same ``Idempotency-Key``
(``<execution>:<step>:37``), and every item's call carries its own item's key."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

import pytest
from sqlmodel import Session, select

from engine.store.models import Execution, StepRun
from engine.store.rule_files import apply_paths
from tests.servers import HttpSink, Reply
from tests.system.test_delivery_crash import kill_group, start_worker, stop_worker, wait_until

pytestmark = pytest.mark.slow

ITEMS = 50
KILL_AT = 37
RECOVERY_TIMEOUT_S = 90.0

RULE = """
sources: [{{slug: shop}}]
rules:
  - name: fulfil
    source: shop
    actions:
      - id: each_item
        type: foreach
        items: $.body.line_items[*]
        steps:
          - {{id: ship, type: webhook, url: "{url}/ship",
             json: {{sku: "{{{{ item.sku }}}}", index: "{{{{ loop.index }}}}"}}}}
      - {{id: done, type: webhook, url: "{url}/done",
         json: {{count: "{{{{ steps.each_item.count }}}}"}}}}
"""


def index_of(rec) -> int | None:  # type: ignore[no-untyped-def]
    try:
        return int(rec.json()["index"])
    except (ValueError, KeyError, TypeError):
        return None


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_worker_killed_mid_foreach_resumes_at_the_item_it_was_on(  # type: ignore[no-untyped-def]
        rt, env, client, tmp_path):
    reached = threading.Event()
    with HttpSink() as sink:
        f = tmp_path / "r.yaml"
        f.write_text(RULE.format(url=sink.url))
        apply_paths(rt.catalog, [f])

        def answer(rec):  # type: ignore[no-untyped-def]
            if rec.path == "/ship" and rec.json()["index"] == KILL_AT and not reached.is_set():
                reached.set()
                return Reply(json={"ok": True}, delay=30)  # in flight when the worker dies
            return None

        sink.handler = answer
        lines = [{"sku": f"sku-{i}"} for i in range(ITEMS)]
        assert client.post("/hooks/shop", json={"line_items": lines}).status_code == 202

        first = start_worker(env)
        second = None
        try:
            assert reached.wait(60), f"item {KILL_AT} never called ({len(sink.requests)} calls)"
            kill_group(first)
            before = len(sink.requests)
            second = start_worker(env)

            def status() -> str:
                with Session(rt.db) as s:
                    ex = s.exec(select(Execution)).one()
                return str(getattr(ex.status, "value", ex.status))

            wait_until(lambda: status() in ("succeeded", "failed"), RECOVERY_TIMEOUT_S,
                       lambda: f"the execution to finish ({status()}, "
                               f"{len(sink.requests)} calls)")
        finally:
            for p in (first, second):
                if p is not None:
                    stop_worker(p)
        requests = list(sink.requests)

    with Session(rt.db) as s:
        ex = s.exec(select(Execution)).one()
        rows = list(s.exec(select(StepRun).where(StepRun.execution_id == ex.id)))
    assert str(getattr(ex.status, "value", ex.status)) == "succeeded", ex.error
    ships = [r for r in requests if r.path == "/ship"]
    keys: dict[int, set[str]] = defaultdict(set)
    for r in ships:
        keys[r.json()["index"]].add(r.headers["idempotency-key"])
    assert sorted(keys) == list(range(ITEMS))
    # each item's call carries its own item's key, whichever worker made it
    assert all(k == {f"{ex.id}:ship:{i}"} for i, k in keys.items()), dict(keys)
    counts = Counter(r.json()["index"] for r in ships)
    assert all(counts[i] == 1 for i in range(KILL_AT)), "an item before the kill ran again"
    assert counts[KILL_AT] == 2  # the call the kill cut off, made again under its key
    assert all(counts[i] == 1 for i in range(KILL_AT + 1, ITEMS))
    # the second worker started at the item the first was on
    resumed = [r.json()["index"] for r in requests[before:] if r.path == "/ship"]
    assert resumed == list(range(KILL_AT, ITEMS))
    assert [r.json() for r in requests if r.path == "/done"] == [{"count": ITEMS}]
    ship_rows = [r for r in rows if r.step_id == "ship"]
    assert len(ship_rows) == ITEMS
    assert {r.item_index: r.attempts for r in ship_rows}[KILL_AT] == 2


def test_a_parallel_foreach_survives_three_kills(rt, env, client, tmp_path):  # type: ignore[no-untyped-def]
    """Three items at a time, the worker killed three times (at items 10, 20 and 30): the
    foreach resumes each time and succeeds — the block only holds its steps, so the
    deaths are the running steps', not a poison block's — and every repeated call
    carries its own item's key."""
    triggers = {10: threading.Event(), 20: threading.Event(), 30: threading.Event()}
    with HttpSink() as sink:
        f = tmp_path / "r.yaml"
        f.write_text(RULE.format(url=sink.url).replace(
            "items: $.body.line_items[*]", "items: $.body.line_items[*]\n        concurrency: 3"))
        apply_paths(rt.catalog, [f])

        def answer(rec):  # type: ignore[no-untyped-def]
            n = index_of(rec) if rec.path == "/ship" else None
            if n in triggers and not triggers[n].is_set():
                triggers[n].set()
                return Reply(json={"ok": True}, delay=30)
            return None

        sink.handler = answer
        lines = [{"sku": f"sku-{i}"} for i in range(40)]
        assert client.post("/hooks/shop", json={"line_items": lines}).status_code == 202
        workers = []
        try:
            for n in sorted(triggers):
                workers.append(start_worker(env))
                assert triggers[n].wait(90), f"item {n} never called"
                kill_group(workers[-1])
            workers.append(start_worker(env))

            def status() -> str:
                with Session(rt.db) as s:
                    ex = s.exec(select(Execution)).one()
                return str(getattr(ex.status, "value", ex.status))

            wait_until(lambda: status() in ("succeeded", "failed"), RECOVERY_TIMEOUT_S,
                       lambda: f"the execution to finish ({status()})")
        finally:
            for p in workers:
                stop_worker(p)
        # a call the kill cut off mid-body reached the receiver truncated: not a delivery
        requests = [r for r in sink.requests if index_of(r) is not None or r.path != "/ship"]
    with Session(rt.db) as s:
        ex = s.exec(select(Execution)).one()
    assert str(getattr(ex.status, "value", ex.status)) == "succeeded", ex.error
    ships = [r for r in requests if r.path == "/ship"]
    keys: dict[int, set[str]] = defaultdict(set)
    for r in ships:
        keys[r.json()["index"]].add(r.headers["idempotency-key"])
    assert sorted(keys) == list(range(40))
    assert all(k == {f"{ex.id}:ship:{i}"} for i, k in keys.items()), dict(keys)
    counts = Counter(r.json()["index"] for r in ships)
    assert all(counts[n] >= 2 for n in triggers)  # cut off by the kill, made again
    assert sum(counts.values()) - 40 <= 3 * 3  # at most the calls in flight at each kill
    assert [r.json() for r in requests if r.path == "/done"] == [{"count": 40}]
