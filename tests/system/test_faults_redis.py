"""Faults of the stores: Redis stopped and restarted mid-run (an embedded redis-server of
the test's own, never the machine's), and the database made unreachable. Nothing
answered 2xx is lost, nothing runs twice, and nothing is acknowledged unstored."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rq.registry import ScheduledJobRegistry
from sqlmodel import Session, select

from engine import runtime as runtime_mod
from engine.broker.embedded import EmbeddedRedis
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.db import upgrade
from engine.store.models import Event, Execution, StepRun
from engine.store.rule_files import apply_paths
from engine.work.sweeper import sweep
from engine.work.worker import make_worker
from tests.servers import Reply
from tests.system.test_faults import start_worker, stop_worker, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    srv = EmbeddedRedis(tmp_path_factory.mktemp("own-redis"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def own(env: dict, embedded: EmbeddedRedis) -> Iterator[tuple[Runtime, dict]]:
    """A runtime (and its env, for subprocess workers) on the embedded Redis."""
    own_env = {**env, "HOOKWISE_REDIS_URL": embedded.url}
    settings = Settings.from_env(own_env)
    upgrade(settings)
    rt = Runtime(settings)
    runtime_mod.install(rt)
    yield rt, own_env
    runtime_mod.install(None)
    rt.close()


def executions(rt: Runtime) -> list[Execution]:
    with Session(rt.db) as s:
        return list(s.exec(select(Execution)))


def events(rt: Runtime) -> list[Event]:
    with Session(rt.db) as s:
        return list(s.exec(select(Event)))


def finished(rt: Runtime, n: int) -> Callable[[], bool]:
    def check() -> bool:
        ex = executions(rt)
        return len(ex) == n and all(e.status in ("succeeded", "failed") for e in ex)
    return check


def while_alive(worker, until: Callable[[], bool]) -> Callable[[], bool]:  # type: ignore[no-untyped-def]
    """``until``, failing at once if the worker process has exited."""
    def check() -> bool:
        if worker.poll() is not None:
            pytest.fail(f"the worker exited ({worker.returncode})")
        return until()
    return check


def work_until(rt: Runtime, until: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        make_worker(rt).work(burst=True, with_scheduler=True, logging_level="WARNING")
        time.sleep(0.2)


ONE_STEP = """
sources: [{{slug: s}}]
rules:
  - name: deliver
    source: s
    actions:
      - {{id: send, type: webhook, url: "{url}/deliver", json: {{n: "{{{{ body.n }}}}"}}}}
"""


def test_redis_stopped_mid_run_loses_nothing_and_runs_each_chain_once(own, embedded, sink,  # type: ignore[no-untyped-def]
                                                                       tmp_path):
    from web import create_app

    rt, own_env = own
    f = tmp_path / "r.yaml"
    f.write_text(ONE_STEP.format(url=sink.url))
    apply_paths(rt.catalog, [f])
    client = create_app(runtime=rt).test_client()
    worker = start_worker(own_env)
    accepted: list[str] = []
    try:
        for n in range(5):
            resp = client.post("/hooks/s", json={"n": n})
            assert resp.status_code == 202
            accepted.append(resp.get_json()["event_id"])
        wait_until(finished(rt, 5), 30, "the first events to run")

        embedded.stop()  # Redis goes away mid-run
        for n in range(5, 15):
            resp = client.post("/hooks/s", json={"n": n})
            assert resp.status_code == 202, resp.get_data()
            accepted.append(resp.get_json()["event_id"])
        ready = client.get("/readyz").get_json()
        assert ready["status"] == "degraded"
        pending = [e for e in events(rt) if e.id in accepted[5:]]
        assert len(pending) == 10 and {e.status for e in pending} == {"pending"}
        time.sleep(1.5)  # the worker meets the outage

        embedded.start()  # same data dir: the AOF is replayed
        report = sweep(rt, pending_after_s=0)
        assert report.events == 10
        wait_until(while_alive(worker, finished(rt, 15)), 60,
                   "every chain to run after the restart")
        sweep(rt, pending_after_s=0)  # a second sweep finds nothing left to do
    finally:
        stop_worker(worker)

    assert {e.id for e in events(rt)} == set(accepted)
    assert {e.status for e in executions(rt)} == {"succeeded"}
    assert Counter(e.event_id for e in executions(rt)) == Counter(accepted)  # one chain each
    keys = Counter(r.headers["idempotency-key"] for r in sink.requests)
    assert len(keys) == 15 and set(keys.values()) == {1}, keys  # each delivered once
    assert sorted(int(r.json()["n"]) for r in sink.requests) == list(range(15))



def test_redis_lost_while_a_job_is_in_flight_does_not_end_the_worker(own, embedded, sink,  # type: ignore[no-untyped-def]
                                                                    tmp_path):
    """RQ's own loop quits when Redis vanishes while it records a job's end; the worker
    process must carry on and take new work once Redis is back."""
    from web import create_app

    rt, own_env = own
    f = tmp_path / "r.yaml"
    f.write_text(ONE_STEP.format(url=sink.url))
    apply_paths(rt.catalog, [f])
    client = create_app(runtime=rt).test_client()
    sink.queue("/deliver", Reply(json={"slow": True}, delay=3))  # the job is mid-step
    worker = start_worker(own_env)
    try:
        first = client.post("/hooks/s", json={"n": 0}).get_json()["event_id"]
        wait_until(lambda: len(sink.requests) == 1, 20, "the first delivery to start")
        embedded.stop()  # the step ends while Redis is away: its bookkeeping fails
        time.sleep(4)
        embedded.start()
        rt.redis.connection_pool.disconnect()
        assert worker.poll() is None, "the worker exited during the Redis outage"
        second = client.post("/hooks/s", json={"n": 1}).get_json()["event_id"]
        wait_until(while_alive(worker, finished(rt, 2)), 30,
                   "the event posted after the outage to run")
    finally:
        stop_worker(worker)
    assert {e.event_id for e in executions(rt)} == {first, second}
    assert {e.status for e in executions(rt)} == {"succeeded"}
    assert sorted(int(r.json()["n"]) for r in sink.requests) == [0, 1]  # each once


TWO_STEPS = """
sources: [{{slug: s}}]
rules:
  - name: two
    source: s
    actions:
      - {{id: one, type: webhook, url: "{url}/one"}}
      - id: two
        type: webhook
        url: "{url}/two"
        retry: {{max_attempts: 5, backoff: fixed, initial_s: 2, max_s: 2}}
"""


def _start_chain_with_a_scheduled_retry(rt: Runtime, sink, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    from web import create_app

    f = tmp_path / "r.yaml"
    f.write_text(TWO_STEPS.format(url=sink.url))
    apply_paths(rt.catalog, [f])
    sink.queue("/two", Reply(status=503))  # the first try fails: a retry is scheduled
    resp = create_app(runtime=rt).test_client().post("/hooks/s", json={})
    assert resp.status_code == 202
    work_until(rt, lambda: any(r.path == "/two" for r in sink.requests))
    [ex] = executions(rt)
    assert ex.status == "waiting"
    with Session(rt.db) as s:
        two = s.exec(select(StepRun).where(StepRun.step_id == "two")).one()
    assert two.status == "waiting" and two.attempts == 1
    assert ScheduledJobRegistry(queue=rt.queue).count == 1
    return ex.id


def _restart(rt: Runtime, embedded: EmbeddedRedis) -> None:
    embedded.stop()  # SHUTDOWN: the AOF is flushed
    embedded.start()
    rt.redis.connection_pool.disconnect()  # drop sockets to the old process


def _assert_resumed_at_step_two(rt: Runtime, sink) -> None:  # type: ignore[no-untyped-def]
    assert [e.status for e in executions(rt)] == ["succeeded"]
    paths = Counter(r.path for r in sink.requests)
    assert paths == {"/one": 1, "/two": 2}  # step one not repeated; step two retried once
    keys = {r.headers["idempotency-key"] for r in sink.requests if r.path == "/two"}
    assert len(keys) == 1


def test_redis_restart_keeps_a_scheduled_retry(own, embedded, sink, tmp_path):  # type: ignore[no-untyped-def]
    rt, _ = own
    _start_chain_with_a_scheduled_retry(rt, sink, tmp_path)
    _restart(rt, embedded)
    assert ScheduledJobRegistry(queue=rt.queue).count == 1  # the AOF kept it
    work_until(rt, finished(rt, 1), timeout=30)
    _assert_resumed_at_step_two(rt, sink)


def test_a_scheduled_retry_lost_with_redis_is_recovered_by_the_sweeper(own, embedded, sink,  # type: ignore[no-untyped-def]
                                                                       tmp_path):
    rt, _ = own
    _start_chain_with_a_scheduled_retry(rt, sink, tmp_path)
    # Redis comes back empty (no AOF: a new server, a failover, a flushed instance)
    embedded.stop()
    for leftover in embedded.data_dir.iterdir():
        if leftover.name.startswith("appendonly") or leftover.suffix in (".aof", ".rdb"):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    embedded.start()
    rt.redis.connection_pool.disconnect()
    assert ScheduledJobRegistry(queue=rt.queue).count == 0 and rt.queue.count == 0
    make_worker(rt).work(burst=True, with_scheduler=True, logging_level="WARNING")
    assert executions(rt)[0].status == "waiting"  # nothing carries it any more

    time.sleep(2.5)  # the retry is now overdue
    report = sweep(rt, overdue_after_s=0, idle_after_s=0)
    assert report.executions == 1
    work_until(rt, finished(rt, 1), timeout=30)
    _assert_resumed_at_step_two(rt, sink)


def test_database_unreachable_means_503_never_2xx(env, tmp_path):  # type: ignore[no-untyped-def]
    """SQLite: the database directory disappears (unmounted volume) and comes back."""
    from web import create_app

    db_dir = tmp_path / "db"
    db_dir.mkdir()
    settings = Settings.from_env({**env, "HOOKWISE_DATABASE_URL": f"sqlite:///{db_dir}/h.db"})
    upgrade(settings)
    rt = Runtime(settings)
    try:
        f = tmp_path / "s.yaml"
        f.write_text("sources: [{slug: s}, {slug: t}]")
        apply_paths(rt.catalog, [f])
        client = create_app(runtime=rt).test_client()
        acknowledged: list[str] = []
        first = client.post("/hooks/s", json={"n": 0})
        assert first.status_code == 202
        acknowledged.append(first.get_json()["event_id"])

        gone = tmp_path / "db-unmounted"
        db_dir.rename(gone)
        rt.db.dispose()  # pooled connections would still reach the moved file
        answers = [client.post(f"/hooks/{slug}", json={"n": n})
                   for n, slug in enumerate(["s", "t", "s", "s", "t"], start=1)]
        assert [a.status_code for a in answers] == [503] * 5
        assert {a.get_json()["error"] for a in answers} == {"unavailable"}
        assert client.get("/readyz").status_code == 503

        gone.rename(db_dir)  # it comes back
        rt.db.dispose()
        for n in range(6, 9):
            resp = client.post("/hooks/s", json={"n": n})
            assert resp.status_code == 202
            acknowledged.append(resp.get_json()["event_id"])
        stored = events(rt)
        assert sorted(e.id for e in stored) == sorted(acknowledged)  # acknowledged = stored
        assert sorted(e.body["n"] for e in stored) == [0, 6, 7, 8]
    finally:
        rt.close()
