"""Poison work (issue 12, item 1): a step whose processing kills its worker is failed,
with the reason, at the third death, not re-queued forever; the events behind it run.

The step test uses real `hookwise worker` processes, SIGKILLed (process group, as an
OOM kill or a container kill) while the step is in flight, three times; the sweep runs
in the test as soon as the dead worker's liveness key is gone (deleted here rather
than waiting out its TTL). The event test drives the sweeper's pending-event path: a
drain job that died with the event popped, and then the event's own job lost with its
worker, three times.
"""

from __future__ import annotations

import time

import pytest
from sqlmodel import Session, select

from engine.broker import inbox
from engine.broker.queue import event_job_id
from engine.store.models import Event, Execution, StepRun
from engine.store.rule_files import apply_paths
from engine.work.sweeper import DEAD_GRACE_S, MAX_WORKER_DEATHS, sweep
from tests.servers import Reply
from tests.system.test_delivery_crash import kill_group
from tests.system.test_faults import start_worker, stop_worker, wait_until

RULES = """
sources: [{{slug: s}}]
rules:
  - name: poison
    source: s
    when: {{path: $.body.kind, op: eq, value: poison}}
    actions:
      - {{id: boom, type: webhook, url: "{url}/boom", timeout_s: 60}}
  - name: fine
    source: s
    when: {{path: $.body.kind, op: eq, value: fine}}
    actions:
      - {{id: ok, type: webhook, url: "{url}/ok"}}
"""


def _apply(rt, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text(RULES.format(url=sink.url))
    apply_paths(rt.catalog, [f])


def _step(rt, step_id: str) -> StepRun:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return s.exec(select(StepRun).where(StepRun.step_id == step_id)).one()


def _execution(rt, rule: str) -> Execution:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return s.exec(select(Execution).where(Execution.rule_name == rule)).one()


@pytest.mark.slow
def test_a_step_that_kills_its_worker_three_times_fails_and_the_next_event_runs(  # type: ignore[no-untyped-def]
        rt, env, client, sink, tmp_path):
    _apply(rt, sink, tmp_path)
    sink.respond("/boom", Reply(json={"late": True}, delay=30))  # in flight when killed
    assert client.post("/hooks/s", json={"kind": "poison"}).status_code == 202
    worker = None
    try:
        for death in range(1, MAX_WORKER_DEATHS + 1):
            worker = start_worker(env)
            wait_until(lambda n=death: sum(r.path == "/boom" for r in sink.requests) == n
                       and _step(rt, "boom").status == "running", 30,
                       f"attempt {death} of the poison step")
            dead = _step(rt, "boom").claimed_by
            kill_group(worker)  # the step killed its worker: no cleanup runs
            worker = None
            rt.redis.delete(f"hookwise:alive:{dead}")  # its heartbeat lapsed
            if death == MAX_WORKER_DEATHS:  # queued behind the poison step's last run
                assert client.post("/hooks/s", json={"kind": "fine"}).status_code == 202
            time.sleep(DEAD_GRACE_S + 0.2)  # a step claimed just now is left alone
            assert sweep(rt).stale_steps == 1
        boom = _step(rt, "boom")
        assert boom.status == "failed", (boom.status, boom.error)
        assert boom.error == "worker died while running this step, 3 times"
        poison = _execution(rt, "poison")
        assert poison.status == "failed"
        assert poison.error == "step boom: worker died while running this step, 3 times"
        assert poison.finished_at is not None

        worker = start_worker(env)
        wait_until(lambda: any(r.path == "/ok" for r in sink.requests)
                   and _execution(rt, "fine").status == "succeeded", 30, "the next event")
        time.sleep(2)  # the sweeper in the new worker does not bring the poison step back
        assert sweep(rt).stale_steps == 0
    finally:
        if worker is not None:
            stop_worker(worker)
    assert sum(r.path == "/boom" for r in sink.requests) == MAX_WORKER_DEATHS
    assert _step(rt, "boom").status == "failed"


def test_an_event_whose_worker_dies_three_times_is_failed_with_the_reason(  # type: ignore[no-untyped-def]
        rt, client, sink, tmp_path, work):
    _apply(rt, sink, tmp_path)
    poison_id = client.post("/hooks/s", json={"kind": "poison"}).get_json()["event_id"]
    name = rt.queue.name
    # the drain job popped the id and its worker died: the id is in no list
    for shard in range(inbox.SHARDS):
        rt.redis.delete(inbox.inbox_key(name, shard), inbox.flag_key(name, shard))
    for death in range(1, MAX_WORKER_DEATHS + 1):
        assert sweep(rt, pending_after_s=0).events == 1
        assert event_job_id(poison_id) in rt.queue.get_job_ids()
        with Session(rt.db) as s:
            event = s.get(Event, poison_id)
            assert event is not None
            assert event.status == ("failed" if death == MAX_WORKER_DEATHS else "pending")
        if death < MAX_WORKER_DEATHS:  # the job's worker died with it; Redis lost the job
            rt.queue.remove(event_job_id(poison_id))
            rt.redis.delete(f"rq:job:{event_job_id(poison_id)}")
    with Session(rt.db) as s:
        event = s.get(Event, poison_id)
        assert event is not None and event.status == "failed"
        assert event.error == "worker died while processing this event, 3 times"
    fine_id = client.post("/hooks/s", json={"kind": "fine"}).get_json()["event_id"]
    work(until=lambda: any(r.path == "/ok" for r in sink.requests))
    with Session(rt.db) as s:
        fine, poison = s.get(Event, fine_id), s.get(Event, poison_id)
        assert fine is not None and fine.status == "processed"
        assert poison is not None and poison.status == "failed"  # its last job: a no-op
    assert not any(r.path == "/boom" for r in sink.requests)
    assert sweep(rt, pending_after_s=0).events == 0
