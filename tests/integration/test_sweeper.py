"""The sweeper finds in the database what Redis lost, and the chain resumes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from engine.ids import utcnow
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.models import Event, Execution, StepRun
from engine.store.rule_files import apply_paths
from engine.work.sweeper import sweep
from tests.servers import free_port


def rule_file(tmp_path, sink) -> object:  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text(f"""
sources: [{{slug: s}}]
rules:
  - name: two-steps
    source: s
    actions:
      - {{id: one, type: webhook, url: "{sink.url}/one"}}
      - {{id: two, type: webhook, url: "{sink.url}/two"}}
""")
    return f


def test_event_stored_while_redis_was_down_is_requeued(rt, env, tmp_path, sink, work):  # type: ignore[no-untyped-def]
    from web import create_app

    apply_paths(rt.catalog, [rule_file(tmp_path, sink)])
    down = Runtime(Settings.from_env(
        {**env, "HOOKWISE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}))
    assert create_app(runtime=down).test_client().post("/hooks/s", json={}).status_code == 202
    down.close()
    assert rt.queue.count == 0

    assert sweep(rt).events == 0  # too young: the normal path may still be on its way
    report = sweep(rt, pending_after_s=0)
    assert report.events == 1
    work()
    assert [r.path for r in sink.wait_for(2)] == ["/one", "/two"]
    with Session(rt.db) as s:
        assert s.exec(select(Event)).one().status == "processed"
        assert s.exec(select(Execution)).one().status == "succeeded"


def test_step_left_running_by_a_dead_worker_resumes_there(rt, client, tmp_path, sink, work):  # type: ignore[no-untyped-def]
    apply_paths(rt.catalog, [rule_file(tmp_path, sink)])
    client.post("/hooks/s", json={})
    work()
    assert len(sink.requests) == 2
    # Pretend the worker died during step two: finished step one, step two 'running'.
    with Session(rt.db) as s:
        ex = s.exec(select(Execution)).one()
        two = s.exec(select(StepRun).where(StepRun.step_id == "two")).one()
    with rt.db.begin() as c:
        c.execute(update(StepRun).where(StepRun.id == two.id).values(
            status="running", started_at=utcnow() - timedelta(hours=1), finished_at=None))
        c.execute(update(Execution).where(Execution.id == ex.id).values(
            status="running", updated_at=utcnow() - timedelta(hours=1)))

    report = sweep(rt)
    assert report.stale_steps == 1 and report.executions == 1
    work()
    assert [r.path for r in sink.requests] == ["/one", "/two", "/two"]  # one not repeated
    with Session(rt.db) as s:
        st = s.exec(select(StepRun).where(StepRun.step_id == "two")).one()
        assert st.status == "succeeded" and st.attempts == 2
        assert s.exec(select(Execution)).one().status == "succeeded"
    assert sweep(rt).total == 0  # nothing left to find


def test_sweeper_does_not_duplicate_events_still_queued(rt, client, tmp_path, sink, work):  # type: ignore[no-untyped-def]
    apply_paths(rt.catalog, [rule_file(tmp_path, sink)])
    from engine.broker import inbox

    for _ in range(3):
        assert client.post("/hooks/s", json={}).status_code == 202
    assert len(inbox.pending_ids(rt.redis, rt.queue.name)) == 3
    jobs = rt.queue.count
    assert sweep(rt, pending_after_s=0).events == 0  # a backlog is not a loss
    assert rt.queue.count == jobs
    work()
    assert len(sink.wait_for(6)) == 6


def test_a_worker_that_lost_its_step_does_not_overwrite_it(rt, client, tmp_path, sink, work):  # type: ignore[no-untyped-def]
    from tests.servers import Reply

    apply_paths(rt.catalog, [rule_file(tmp_path, sink)])

    def taken_over(rec):  # type: ignore[no-untyped-def]
        if rec.path == "/one":  # meanwhile the sweeper gave the step to another worker
            with rt.db.begin() as c:
                c.execute(update(StepRun).where(StepRun.step_id == "one")
                          .values(claimed_by="another-worker"))
        return Reply(json={"ok": True})

    sink.handler = taken_over
    client.post("/hooks/s", json={})
    work()
    with Session(rt.db) as s:
        one = s.exec(select(StepRun).where(StepRun.step_id == "one")).one()
        two = s.exec(select(StepRun).where(StepRun.step_id == "two")).one()
    assert (one.status, one.claimed_by) == ("running", "another-worker")  # left to it
    assert two.status == "pending" and [r.path for r in sink.requests] == ["/one"]


def _wait_step_two(rt, *, claimed_by: str, overdue_s: float) -> str:  # type: ignore[no-untyped-def]
    """Step two left waiting (its retry due ``overdue_s`` ago) by ``claimed_by``, with no
    job anywhere: the turn that worker held in memory died with it."""
    with Session(rt.db) as s:
        ex = s.exec(select(Execution)).one()
        two = s.exec(select(StepRun).where(StepRun.step_id == "two")).one()
    with rt.db.begin() as c:
        c.execute(update(StepRun).where(StepRun.id == two.id).values(
            status="waiting", claimed_by=claimed_by, finished_at=None,
            next_attempt_at=utcnow() - timedelta(seconds=overdue_s)))
        c.execute(update(Execution).where(Execution.id == ex.id).values(
            status="waiting", updated_at=utcnow()))
    return ex.id


def test_a_turn_left_by_a_dead_worker_is_queued_without_the_idle_wait(  # type: ignore[no-untyped-def]
        rt, client, tmp_path, sink, work):
    from engine.broker import liveness

    apply_paths(rt.catalog, [rule_file(tmp_path, sink)])
    client.post("/hooks/s", json={})
    work()
    assert len(sink.requests) == 2
    liveness.beat(rt.redis, "alive-worker")
    _wait_step_two(rt, claimed_by="alive-worker", overdue_s=10)
    assert sweep(rt).executions == 0  # its worker lives: it still has the turn
    _wait_step_two(rt, claimed_by="dead-worker", overdue_s=2)
    assert sweep(rt).executions == 0  # barely overdue: the scheduler may be on its way
    ex_id = _wait_step_two(rt, claimed_by="dead-worker", overdue_s=10)
    assert sweep(rt).executions == 1  # updated a moment ago: not for the idle threshold
    assert sweep(rt).executions == 0  # queued once, not at every pass
    work()
    assert [r.path for r in sink.requests] == ["/one", "/two", "/two"]
    with Session(rt.db) as s:
        assert s.get(Execution, ex_id).status == "succeeded"


def test_a_retry_scheduled_while_redis_is_away_is_queued_when_it_answers(  # type: ignore[no-untyped-def]
        rt, env):
    from rq.registry import ScheduledJobRegistry

    from engine.broker import deferred

    down = Runtime(Settings.from_env(
        {**env, "HOOKWISE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}))
    assert down.queue.name == rt.queue.name  # the same queue, its Redis away
    deferred.defer(down.queue, "exe_later", 30)
    deferred.defer(down.queue, "exe_now", 0)
    deferred.defer(down.queue, "exe_now", 5)  # the earliest turn wins
    try:
        assert deferred.flush(down.queue) == 0  # still away: kept
        assert deferred.pending(rt.queue) == 2
    finally:
        down.close()
    assert deferred.flush(rt.queue) == 2
    assert deferred.pending(rt.queue) == 0
    queued = [rt.queue.fetch_job(j).args for j in rt.queue.job_ids]
    scheduled = ScheduledJobRegistry(queue=rt.queue)
    later = [rt.queue.fetch_job(j).args for j in scheduled.get_job_ids()]
    assert queued == [["exe_now"]] and later == [["exe_later"]]  # (JSON: lists)
