"""The sweeper: the database is the record, so work Redis lost is found there.

It re-queues (1) jobs that a dead worker had started (its heartbeat, see
``engine.broker.liveness``, expired), (2) events still ``pending`` some seconds after they were
stored (the enqueue failed, or Redis lost the job), (3) steps left ``running`` by a dead
worker, or for longer than a job may run — the attempt counts, and the chain resumes at
that step — and (4) open executions with nothing in flight (a lost scheduled retry).
Every job it queues is safe to run twice. Workers run it every few seconds under a
Redis lock, so one sweep happens at a time however many workers there are.

Poison work: each time it re-queues an event or a step whose worker died, it counts
that death (a Redis counter per event id / step id, kept ``DEATHS_TTL_S``); at the
``MAX_WORKER_DEATHS``-th the event or step is marked failed with the reason instead of
being queued again, so work that kills its worker (an OOM-killed template, say) does
not kill workers forever, nor hold up the events behind it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import and_, or_, select, update

from engine.broker import inbox, liveness
from engine.broker.jobs import DRAIN_INBOX, PROCESS_EVENT, RUN_EXECUTION, canonical
from engine.broker.queue import JOB_TIMEOUT_S, enqueue_event, enqueue_execution
from engine.errors import QueueError
from engine.ids import utcnow
from engine.runtime import Runtime
from engine.store import rejections
from engine.store import statements as sql
from engine.store.models import Event, EventStatus, Execution, ExecutionStatus, StepRun, StepStatus

log = logging.getLogger(__name__)

STALE_RUNNING_AFTER_S = JOB_TIMEOUT_S + 60.0
OVERDUE_WAITING_AFTER_S = 60.0
IDLE_EXECUTION_AFTER_S = 60.0
SWEEP_INTERVAL_S = 5.0
ORPHAN_OVERDUE_S = 5.0  # a waiting step this overdue, its worker dead: queue it again
ORPHAN_REQUEUE_S = 60
DEAD_GRACE_S = 2.0  # a step claimed this recently may belong to a worker just starting
BATCH = 500
LOCK_KEY = "hookwise:sweeper"
MAX_WORKER_DEATHS = 3  # then the event or step is failed, not queued again
DEATHS_TTL_S = 24 * 3600


@dataclass
class SweepReport:
    events: int = 0
    stale_steps: int = 0
    executions: int = 0
    orphan_jobs: int = 0

    @property
    def total(self) -> int:
        return self.events + self.stale_steps + self.executions + self.orphan_jobs


def deaths_key(kind: str, ident: object) -> str:
    return f"hookwise:deaths:{kind}:{ident}"


def count_death(rt: Runtime, kind: str, ident: object) -> int:
    """One more worker died with this event (``kind`` "event") or step ("step") in hand:
    answers how many times that has happened (within ``DEATHS_TTL_S``)."""
    key = deaths_key(kind, ident)
    with rt.redis.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, DEATHS_TTL_S)
        return int(pipe.execute()[0])


def event_death_reason(n: int) -> str:
    return f"worker died while processing this event, {n} times"


def step_death_reason(n: int) -> str:
    return f"worker died while running this step, {n} times"


def fail_poison_event(rt: Runtime, event_id: str, deaths: int) -> bool:
    """Mark a still-pending event failed after ``deaths`` workers died processing it
    (answers False if it is no longer pending: it got matched meanwhile)."""
    with rt.db.begin() as conn:
        done = conn.execute(sql.FAIL_EVENT, {"k_id": event_id, "processed_at": utcnow(),
                                             "error": event_death_reason(deaths)}).rowcount
    if done:
        log.error("event %s failed: %s", event_id, event_death_reason(deaths))
    return bool(done)


def requeue_orphans(rt: Runtime) -> int:
    """Jobs that a now-dead worker had started: remove them and queue them again (the
    job functions resume where the database says the work stands)."""
    registry = StartedJobRegistry(queue=rt.queue)
    jobs = []
    for job_id in registry.get_job_ids(cleanup=False):
        try:
            job = Job.fetch(job_id, connection=rt.redis, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) == JobStatus.STARTED and job.worker_name:
            jobs.append(job)
    living = liveness.alive(rt.redis, (j.worker_name for j in jobs if j.worker_name))
    n = 0
    for job in jobs:
        if job.worker_name in living:
            continue
        func, args = canonical(job.func_name), list(job.args)
        registry.remove_executions(job)
        job.delete()
        if func == PROCESS_EVENT:
            deaths = count_death(rt, "event", args[0])
            if deaths < MAX_WORKER_DEATHS or not fail_poison_event(rt, args[0], deaths):
                enqueue_event(rt.queue, args[0])
        elif func == RUN_EXECUTION:
            enqueue_execution(rt.queue, args[0])
        elif func == DRAIN_INBOX:  # its owner is dead: take over its flag
            rt.redis.set(inbox.flag_key(rt.queue.name, args[0]), "1", ex=inbox.FLAG_TTL_S)
            inbox.start_drain(rt.queue, args[0])
        n += 1
    return n


def sweep(rt: Runtime, *, pending_after_s: float | None = None,
          stale_after_s: float = STALE_RUNNING_AFTER_S,
          overdue_after_s: float = OVERDUE_WAITING_AFTER_S,
          idle_after_s: float = IDLE_EXECUTION_AFTER_S) -> SweepReport:
    """One pass. Raises QueueError when Redis is still unreachable (nothing is lost:
    the rows stay as they are for the next pass). ``pending_after_s``: the settings'
    ``HOOKWISE_SWEEP_PENDING_S`` unless given."""
    if pending_after_s is None:
        pending_after_s = float(rt.settings.sweep_pending_s)
    now = utcnow()
    report = SweepReport(orphan_jobs=requeue_orphans(rt))
    events = Event.__table__  # type: ignore[attr-defined]
    steps = StepRun.__table__  # type: ignore[attr-defined]
    execs = Execution.__table__  # type: ignore[attr-defined]
    with rt.db.connect() as conn:
        pending = conn.execute(
            select(events.c.id).where(
                events.c.status == EventStatus.pending.value,
                events.c.received_at < now - timedelta(seconds=pending_after_s),
            ).order_by(events.c.received_at).limit(BATCH)
        ).scalars().all()
    waiting = inbox.pending_ids(rt.redis, rt.queue.name) if pending else set()
    for event_id in pending:
        if event_id in waiting:  # an id in the inbox will be drained
            continue
        if enqueue_event(rt.queue, event_id):  # False: still queued
            # Its job is gone: a drain batch or a job whose worker died with it (or Redis
            # lost it). At the last death, the job just queued finds it failed: a no-op.
            report.events += 1
            deaths = count_death(rt, "event", event_id)
            if deaths >= MAX_WORKER_DEATHS:
                fail_poison_event(rt, event_id, deaths)
    for shard in inbox.undrained_shards(rt.redis, rt.queue.name):
        if rt.redis.set(inbox.flag_key(rt.queue.name, shard), "1", nx=True,
                        ex=inbox.FLAG_TTL_S):
            inbox.start_drain(rt.queue, shard)

    # Steps whose worker died mid-step (its heartbeat is gone, or the step has run far
    # longer than a job may): make them retryable now (the attempt counts), or, at the
    # MAX_WORKER_DEATHS-th death, fail the step and its execution. The retry policy
    # does not cap this: the chain checks it only after an action has returned.
    with rt.db.begin() as conn:
        running = conn.execute(
            select(steps.c.id, steps.c.execution_id, steps.c.step_id, steps.c.claimed_by,
                   steps.c.started_at, steps.c.type,
                   steps.c.rendered.is_(None).label("undecided"))
            .where(steps.c.status == StepStatus.running.value).limit(BATCH)
        ).all()
        living = liveness.alive(rt.redis, (r.claimed_by for r in running if r.claimed_by))
        too_old = now - timedelta(seconds=stale_after_s)
        stale = [
            (r.id, r.execution_id, r.step_id) for r in running
            if (r.claimed_by and r.claimed_by not in living
                and r.started_at < now - timedelta(seconds=DEAD_GRACE_S))
            or r.started_at < too_old
        ]
        # A flow block that has decided (its case, its items) was only holding its
        # steps: the step running inside it counts the death, so a long foreach killed
        # by three deploys is resumed, not failed.
        holding = {r.id for r in running
                   if r.type in ("branch", "foreach") and not r.undecided}
        failed: set[str] = set()
        for step_id, execution_id, name in stale:
            if step_id in holding:
                conn.execute(update(steps).where(
                    steps.c.id == step_id, steps.c.status == StepStatus.running.value,
                ).values(status=StepStatus.waiting.value, next_attempt_at=now,
                         claimed_by=None))
                continue
            deaths = count_death(rt, "step", step_id)
            still_running = and_(steps.c.id == step_id,
                                 steps.c.status == StepStatus.running.value)
            if deaths < MAX_WORKER_DEATHS:
                done = conn.execute(update(steps).where(still_running).values(
                    status=StepStatus.waiting.value, next_attempt_at=now,
                    error=f"worker stopped during this step ({deaths} of "
                          f"{MAX_WORKER_DEATHS} times); resumed by the sweeper")).rowcount
            else:
                reason = step_death_reason(deaths)
                done = conn.execute(update(steps).where(still_running).values(
                    status=StepStatus.failed.value, error=reason, finished_at=now,
                    next_attempt_at=None, claimed_by=None)).rowcount
                if done:
                    log.error("step %s of %s failed: %s", name, execution_id, reason)
                    failed.add(execution_id)
                    conn.execute(update(execs).where(
                        execs.c.id == execution_id, execs.c.status.in_(
                            [ExecutionStatus.pending.value, ExecutionStatus.running.value,
                             ExecutionStatus.waiting.value])).values(
                        status=ExecutionStatus.failed.value, updated_at=now,
                        finished_at=now, error=f"step {name}: {reason}"))
            if not done:  # it finished meanwhile: no death to count
                rt.redis.decr(deaths_key("step", step_id))
    report.stale_steps = len(stale)

    # Open executions with nothing scheduled soon: the job that should carry them is lost.
    open_statuses = [ExecutionStatus.pending.value, ExecutionStatus.running.value,
                     ExecutionStatus.waiting.value]
    in_flight = select(steps.c.execution_id).where(or_(
        steps.c.status == StepStatus.running.value,
        and_(steps.c.status == StepStatus.waiting.value,
             steps.c.next_attempt_at > now - timedelta(seconds=overdue_after_s)),
    ))
    with rt.db.connect() as conn:
        idle = conn.execute(
            select(execs.c.id).where(
                execs.c.status.in_(open_statuses),
                execs.c.updated_at < now - timedelta(seconds=idle_after_s),
                execs.c.id.not_in(in_flight),
            ).limit(BATCH)
        ).scalars().all()
    ids = ({eid for _, eid, _ in stale} - failed) | set(idle) | orphaned_turns(rt, now)
    for ex_id in sorted(ids):
        enqueue_execution(rt.queue, ex_id)
    report.executions = len(ids)
    try:  # rejected webhooks are bounded and expire (engine.store.rejections)
        rejections.prune(rt.db)
    except Exception as exc:
        log.warning("sweeper: could not prune rejected requests: %s", exc)
    return report


def orphaned_turns(rt: Runtime, now: datetime) -> set[str]:
    """Executions whose waiting step is overdue and was left by a worker that is gone:
    it may have died holding the turn in memory (Redis was away when it scheduled it,
    engine.broker.deferred), so its job may never have existed. Queued again without
    waiting for the idle threshold, each at most once per ORPHAN_REQUEUE_S."""
    steps = StepRun.__table__  # type: ignore[attr-defined]
    with rt.db.connect() as conn:
        overdue = conn.execute(
            select(steps.c.execution_id, steps.c.claimed_by).where(
                steps.c.status == StepStatus.waiting.value,
                steps.c.next_attempt_at < now - timedelta(seconds=ORPHAN_OVERDUE_S),
                steps.c.claimed_by.is_not(None),
            ).limit(BATCH)
        ).all()
    if not overdue:
        return set()
    living = liveness.alive(rt.redis, (r.claimed_by for r in overdue))
    out = set()
    for r in overdue:
        if r.claimed_by not in living and rt.redis.set(
                f"{LOCK_KEY}:orphan:{r.execution_id}", "1", nx=True, ex=ORPHAN_REQUEUE_S):
            out.add(r.execution_id)
    return out


def start_background(rt: Runtime, interval_s: float = SWEEP_INTERVAL_S) -> threading.Event:
    """Sweep every ``interval_s`` in a daemon thread, one process at a time (Redis
    lock). Set the returned event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                if not rt.redis.set(LOCK_KEY, "1", nx=True, ex=max(int(interval_s) - 1, 1)):
                    continue
                report = sweep(rt)
                if report.total:
                    log.warning("sweeper re-queued %s", report)
            except QueueError as exc:
                log.warning("sweeper: %s", exc)
            except Exception:
                log.exception("sweeper pass failed")

    threading.Thread(target=loop, name="hookwise-sweeper", daemon=True).start()
    return stop
