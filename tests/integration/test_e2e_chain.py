"""One webhook end to end: ingest → stored → matched → webhook → db_write → email,
through a real RQ worker, real Redis, SQLite and PostgreSQL, SMTP and HTTP on loopback."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from engine.store.models import Event, Execution, MatchTrace, StepRun
from engine.store.queries import get_event
from engine.store.rule_files import apply_paths
from tests.servers import Reply

RULES = """
sources:
  - slug: shop
    dedup: {path: $.body.id}
rules:
  - name: paid-order
    source: shop
    when:
      all:
        - {path: $.body.type, op: eq, value: order.paid}
        - {path: $.body.total, op: gt, value: 100}
    actions:
      - id: notify
        type: webhook
        url: "{{ secrets.SINK_URL }}/orders?src={{ event.source }}"
        headers: {Authorization: "Bearer {{ secrets.SINK_TOKEN }}"}
        json: {order: "{{ body.id }}", total: "{{ body.total }}", vip: "{{ body.total > 500 }}"}
      - id: save
        type: db_write
        table: orders_seen
        mode: upsert
        key: [order_id]
        values:
          order_id: "{{ body.id }}"
          total: "{{ body.total }}"
          ticket: "{{ steps.notify.json.ticket }}"
      - id: mail
        type: email
        to: "{{ body.email }}"
        subject: "Order {{ body.id }}"
        text: >-
          Ticket {{ steps.notify.json.ticket }} (HTTP {{ steps.notify.status }}),
          row {{ steps.save.rowcount }}
"""


@pytest.fixture
def shop(rt, tmp_path, sink):  # type: ignore[no-untyped-def]
    f = tmp_path / "rules.yaml"
    f.write_text(RULES)
    apply_paths(rt.catalog, [f])
    rt.secrets.set("SINK_URL", sink.url)
    rt.secrets.set("SINK_TOKEN", "tok-very-secret")
    with rt.db.begin() as c:
        c.execute(text("CREATE TABLE orders_seen (order_id VARCHAR(64) PRIMARY KEY, "
                       "total INTEGER, ticket VARCHAR(64))"))
    sink.respond("/orders", Reply(status=201, json={"ticket": "T-42"}))
    return rt


def post(client, body, source="shop"):  # type: ignore[no-untyped-def]
    return client.post(f"/hooks/{source}", data=json.dumps(body),
                       content_type="application/json")


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_chain_runs_end_to_end(shop, client, work, sink, smtp, rt):  # type: ignore[no-untyped-def]
    order = {"type": "order.paid", "id": "o-1", "total": 750, "email": "ann@example.test"}
    resp = post(client, order)
    assert resp.status_code == 202, resp.get_json()
    event_id = resp.get_json()["event_id"]

    work()

    [req] = sink.wait_for(1)
    assert req.path == "/orders" and req.query == {"src": "shop"}
    assert req.json() == {"order": "o-1", "total": 750, "vip": True}  # types kept
    assert req.headers["authorization"] == "Bearer tok-very-secret"
    assert req.headers["idempotency-key"].endswith(":notify")

    with rt.db.connect() as c:
        rows = c.execute(text("SELECT order_id, total, ticket FROM orders_seen")).all()
    assert [tuple(r) for r in rows] == [("o-1", 750, "T-42")]

    [msg] = smtp.wait_for(1)
    assert msg["To"] == "ann@example.test" and msg["Subject"] == "Order o-1"
    assert msg.get_content().strip() == "Ticket T-42 (HTTP 201), row 1"

    info = get_event(rt.db, event_id)
    assert info is not None and info["event"]["status"] == "processed"
    [trace] = info["matches"]
    assert trace["matched"] and trace["rule_name"] == "paid-order"
    [ex] = info["executions"]
    assert ex["status"] == "succeeded"
    steps = ex["steps"]
    assert [(s["step_id"], s["status"], s["attempts"]) for s in steps] == [
        ("notify", "succeeded", 1), ("save", "succeeded", 1), ("mail", "succeeded", 1)]
    # rendered input is stored with secrets redacted; outputs are what later steps saw
    notify = steps[0]
    assert "tok-very-secret" not in json.dumps(notify["rendered"])
    assert notify["rendered"]["headers"]["Authorization"] == "Bearer [redacted]"
    assert notify["output"]["status"] == 201 and notify["output"]["json"] == {"ticket": "T-42"}
    assert steps[1]["output"]["rowcount"] == 1
    assert steps[2]["output"]["message_id"]
    assert all(s["duration_ms"] is not None for s in steps)


def test_non_matching_event_runs_nothing_and_says_why(shop, client, work, sink, smtp, rt):  # type: ignore[no-untyped-def]
    resp = post(client, {"type": "order.paid", "id": "o-2", "total": 20, "email": "a@b.test"})
    assert resp.status_code == 202
    work()
    assert sink.requests == [] and smtp.messages == []
    with Session(rt.db) as s:
        [trace] = s.exec(select(MatchTrace)).all()
        assert s.exec(select(Execution)).all() == []
        assert s.exec(select(Event)).one().status == "processed"
    assert not trace.matched
    assert "$.body.total gt 100" in (trace.reason or "") and "20" in (trace.reason or "")


def test_duplicate_delivery_is_answered_and_runs_once(shop, client, work, sink, rt):  # type: ignore[no-untyped-def]
    order = {"type": "order.paid", "id": "o-3", "total": 150, "email": "c@d.test"}
    first = post(client, order)
    second = post(client, order)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.get_json() == {"event_id": first.get_json()["event_id"], "duplicate": True}
    work()
    assert len(sink.wait_for(1)) == 1
    with Session(rt.db) as s:
        assert len(s.exec(select(Event)).all()) == 1


def test_job_run_twice_does_not_repeat_finished_steps(shop, client, work, sink, rt):  # type: ignore[no-untyped-def]
    from engine.work.jobs import process_event

    resp = post(client, {"type": "order.paid", "id": "o-4", "total": 300, "email": "e@f.test"})
    work()
    process_event(resp.get_json()["event_id"])  # a duplicate delivery of the same job
    assert len(sink.requests) == 1
    with Session(rt.db) as s:
        assert len(s.exec(select(Execution)).all()) == 1
        assert {st.attempts for st in s.exec(select(StepRun))} == {1}


def test_transient_failure_retries_then_succeeds(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text(f"""
sources: [{{slug: ci}}]
rules:
  - name: build
    source: ci
    actions:
      - id: trigger
        type: webhook
        url: {sink.url}/build
        json: {{ref: "{{{{ body.ref }}}}"}}
        retry: {{max_attempts: 3, backoff: fixed, initial_s: 0.2}}
""")
    apply_paths(rt.catalog, [f])
    sink.queue("/build", Reply(status=503), Reply(status=429, headers={"Retry-After": "0"}))
    resp = post(client, {"ref": "main"}, source="ci")
    assert resp.status_code == 202

    def done() -> bool:
        with Session(rt.db) as s:
            return s.exec(select(Execution)).one().status == "succeeded"

    work(until=done, timeout=15)
    assert len(sink.requests) == 3
    keys = {r.headers["idempotency-key"] for r in sink.requests}
    assert len(keys) == 1  # same key on every attempt: receivers can drop repeats
    with Session(rt.db) as s:
        st = s.exec(select(StepRun)).one()
    assert st.attempts == 3 and st.status == "succeeded"


def test_permanent_failure_fails_the_execution_with_the_reason(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text(f"""
sources: [{{slug: ci}}]
rules:
  - name: build
    source: ci
    actions:
      - {{id: trigger, type: webhook, url: "{sink.url}/missing"}}
      - {{id: after, type: webhook, url: "{sink.url}/after"}}
""")
    apply_paths(rt.catalog, [f])
    sink.respond("/missing", Reply(status=404))
    post(client, {"ref": "main"}, source="ci")
    work()
    with Session(rt.db) as s:
        ex = s.exec(select(Execution)).one()
        steps = s.exec(select(StepRun).order_by(StepRun.position)).all()
    assert ex.status == "failed" and "404" in (ex.error or "")
    assert [st.status for st in steps] == ["failed", "pending"]
    assert [r.path for r in sink.requests] == ["/missing"]


def test_a_chain_that_crashes_does_not_hold_up_the_rest_of_its_batch(rt, forwarded, sink,  # type: ignore[no-untyped-def]
                                                                       monkeypatch):
    """A drained batch runs its events' chains one after another: an unexpected error in
    one (a bug, not a step failure) is logged and the others still run."""
    from engine.run.batch import process_events
    from engine.run.chain import ChainRunner

    ids = forwarded(3)
    real_run = ChainRunner.run
    calls: list[str] = []

    def crashing_once(self, execution_id, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(execution_id)
        if len(calls) == 1:
            raise RuntimeError("a bug in the runner")
        return real_run(self, execution_id, **kwargs)

    monkeypatch.setattr(ChainRunner, "run", crashing_once)
    answers = process_events(rt, ids)
    assert len(calls) == 3 and [len(a["executions"]) for a in answers] == [1, 1, 1]
    assert sorted(int(r.json()["n"]) for r in sink.requests) == [1, 2]  # the other two ran
