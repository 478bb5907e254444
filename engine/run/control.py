"""Helping a run along by hand: retry a waiting step now, cancel a waiting execution,
retry many failed executions at once (with a progress record).

*Retry now* makes the waiting step due at once (``next_attempt_at`` = now, as the sweeper
does), drops the execution's scheduled jobs from RQ (so the old schedule does not fire
later) and queues it. *Cancel* ends a pending or waiting execution as ``failed`` with the
error ``cancelled …`` (the SPEC's statuses are kept; no ``cancelled`` status): its
waiting step fails with that reason and the steps after it are skipped. A step that is
running cannot be cancelled (its action is under way).
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import update
from sqlmodel import Session, col, select

from engine.broker.queue import enqueue_execution
from engine.errors import Conflict, HookwiseError, NotFound
from engine.ids import utcnow
from engine.run.replay import retry_execution
from engine.runtime import Runtime
from engine.store.db import session_scope
from engine.store.models import Execution, ExecutionStatus, StepRun, StepStatus

log = logging.getLogger(__name__)

BULK_MAX = 1000  # executions one bulk retry takes on
SCHEDULE_SCAN = 10_000  # scheduled jobs looked through for an execution's
BATCH_TTL_S = 24 * 3600
CANCELLABLE = (ExecutionStatus.pending, ExecutionStatus.waiting)


def _batch_key(batch_id: str) -> str:
    return f"hookwise:bulk-retry:{batch_id}"


def drop_scheduled(rt: Runtime, execution_id: str) -> int:
    """Remove the execution's scheduled (not yet due) RQ jobs; answers how many."""
    registry = ScheduledJobRegistry(queue=rt.queue)
    ids = registry.get_job_ids(0, SCHEDULE_SCAN - 1)
    dropped = 0
    for job in Job.fetch_many(ids, connection=rt.redis, serializer=JSONSerializer):
        if job is not None and list(job.args or ()) == [execution_id]:
            registry.remove(job, delete_job=True)
            dropped += 1
    return dropped


def _open_step(s: Session, execution_id: str, status: StepStatus) -> StepRun | None:
    return s.exec(select(StepRun).where(StepRun.execution_id == execution_id,
                                        StepRun.status == status)
                  .order_by(col(StepRun.position))).first()


def retry_now(rt: Runtime, execution_id: str) -> str:
    """Run the execution's waiting step at once; answers the step's id. Conflict unless
    the execution is waiting."""
    now = utcnow()
    with session_scope(rt.db) as s:
        ex = s.get(Execution, execution_id)
        if ex is None:
            raise NotFound(f"no execution {execution_id}")
        st = _open_step(s, execution_id, StepStatus.waiting)
        if ex.status != ExecutionStatus.waiting or st is None:
            raise Conflict(f"execution {execution_id} is {ex.status}: only a step that is "
                           "waiting for its next attempt can be retried now")
        step_id = st.step_id
        done = s.execute(update(StepRun).where(
            col(StepRun.id) == st.id, col(StepRun.status) == StepStatus.waiting,
        ).values(next_attempt_at=now)).rowcount  # type: ignore[attr-defined]
        if not done:
            raise Conflict(f"step {step_id} started meanwhile")
    try:
        drop_scheduled(rt, execution_id)
    except Exception as exc:  # the early job is harmless; the new one runs the step
        log.warning("could not drop the scheduled jobs of %s: %s", execution_id, exc)
    enqueue_execution(rt.queue, execution_id)
    return step_id


def cancel_execution(rt: Runtime, execution_id: str, *, by: str | None = None) -> str:
    """End a pending or waiting execution as failed, error ``cancelled …``; answers the
    error written. Conflict when it is running or finished."""
    now = utcnow()
    reason = f"cancelled by {by}" if by else "cancelled"
    with session_scope(rt.db) as s:
        ex = s.get(Execution, execution_id)
        if ex is None:
            raise NotFound(f"no execution {execution_id}")
        if ex.status not in CANCELLABLE or _open_step(s, execution_id, StepStatus.running):
            raise Conflict(f"execution {execution_id} is {ex.status}: only a pending or "
                           "waiting execution can be cancelled")
        waiting = _open_step(s, execution_id, StepStatus.waiting)
        error = f"step {waiting.step_id}: {reason}" if waiting else reason
        done = s.execute(update(Execution).where(
            col(Execution.id) == execution_id,
            col(Execution.status).in_([c.value for c in CANCELLABLE]),
        ).values(status=ExecutionStatus.failed, error=error, finished_at=now,
                 updated_at=now)).rowcount  # type: ignore[attr-defined]
        if not done:
            raise Conflict(f"execution {execution_id} changed meanwhile; not cancelled")
        s.execute(update(StepRun).where(
            col(StepRun.execution_id) == execution_id,
            col(StepRun.status) == StepStatus.waiting,
        ).values(status=StepStatus.failed, error=reason, finished_at=now,
                 next_attempt_at=None))
        s.execute(update(StepRun).where(
            col(StepRun.execution_id) == execution_id,
            col(StepRun.status) == StepStatus.pending,
        ).values(status=StepStatus.skipped, output={"skipped": reason}, finished_at=now))
    try:
        drop_scheduled(rt, execution_id)
    except Exception as exc:  # a job that still comes finds the execution finished
        log.warning("could not drop the scheduled jobs of %s: %s", execution_id, exc)
    return error


@dataclass
class BulkRetry:
    """What a bulk retry did: ``batch`` names its progress record."""

    batch: str
    retried: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "retried": self.retried, "skipped": self.skipped,
                "total": len(self.retried)}


def failed_in_latest_round(rt: Runtime, event_ids: list[str]) -> list[str]:
    """The failed executions of these events' latest rounds, oldest first."""
    if not event_ids:
        return []
    from engine.store.models import Event

    out: list[str] = []
    with Session(rt.db) as s:
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start:start + 500]
            out += s.exec(select(Execution.id).join(
                Event, col(Event.id) == col(Execution.event_id)).where(
                col(Execution.event_id).in_(chunk),
                col(Execution.match_round) == col(Event.match_round),
                col(Execution.status) == ExecutionStatus.failed.value,
            ).order_by(col(Execution.created_at))).all()
    return out[:BULK_MAX]


def failed_matching(rt: Runtime, **filters: Any) -> list[str]:
    """The failed executions (latest rounds) of the events ``queries.list_events`` selects
    with ``filters`` (source, status, since, until, text, path, value), at most BULK_MAX.
    Raises PathError for a bad ``path``."""
    from engine.store.queries import MAX_LIMIT, list_events

    event_ids: list[str] = []
    offset = 0
    while len(event_ids) < BULK_MAX:
        page = list_events(rt.db, outcome="failed", limit=MAX_LIMIT, offset=offset,
                           **{k: v for k, v in filters.items() if v not in (None, "")})
        event_ids += [e["id"] for e in page.items]
        if page.next_offset is None:
            break
        offset = page.next_offset
    return failed_in_latest_round(rt, event_ids)


def retry_many(rt: Runtime, execution_ids: list[str]) -> BulkRetry:
    """Retry each failed execution (at most BULK_MAX); the others are skipped with the
    reason. The batch's ids are kept a day for ``batch_progress``."""
    result = BulkRetry(secrets.token_hex(8))
    for ex_id in list(dict.fromkeys(execution_ids))[:BULK_MAX]:
        try:
            retry_execution(rt, ex_id)
        except (NotFound, Conflict) as exc:
            result.skipped.append({"execution_id": ex_id, "reason": str(exc)})
            continue
        except HookwiseError as exc:  # recorded; the sweeper queues it
            log.warning("bulk retry: %s", exc)
        result.retried.append(ex_id)
    try:
        rt.redis.set(_batch_key(result.batch), json.dumps(result.retried), ex=BATCH_TTL_S)
    except Exception as exc:
        log.warning("could not record bulk retry %s: %s", result.batch, exc)
    return result


def batch_progress(rt: Runtime, batch_id: str) -> dict[str, Any] | None:
    """How far a bulk retry got: ``total``, ``finished``, ``succeeded``, ``failed``,
    ``open``; None when the batch is unknown (or older than a day)."""
    raw = rt.redis.get(_batch_key(batch_id))
    if raw is None:
        return None
    ids = json.loads(raw)
    counts = {"succeeded": 0, "failed": 0, "open": 0}
    with Session(rt.db) as s:
        for start in range(0, len(ids), 500):
            for status in s.exec(select(Execution.status).where(
                    col(Execution.id).in_(ids[start:start + 500]))):
                key = str(status) if str(status) in counts else "open"
                counts[key] += 1
    total = len(ids)
    finished = counts["succeeded"] + counts["failed"]
    return {"batch": batch_id, "total": total, "finished": finished, **counts,
            "done": finished == total,
            "percent": 100 if total == 0 else round(100 * finished / total)}
