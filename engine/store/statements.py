"""The worker's and ingest's hot-path SQL, built once.

Building a SQLAlchemy statement per call (``update(T).where(...).values(**v)``) costs
~0.3 ms in statement construction and cache-key generation — more than the database
work. These are built once per shape with ``bindparam``s and executed with
parameters (~0.07 ms). Values keep the columns' types (JSON, aware datetimes, status
enums), so what is written is exactly what the ORM would write.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Insert, Update, bindparam, insert, update

from engine.store.models import Event, EventStatus, Execution, MatchTrace, StepRun, StepStatus

EVENTS = Event.__table__  # type: ignore[attr-defined]
TRACES = MatchTrace.__table__  # type: ignore[attr-defined]
EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]
STEPS = StepRun.__table__  # type: ignore[attr-defined]

INSERT_EVENT: Insert = insert(EVENTS)
INSERT_TRACES: Insert = insert(TRACES)
INSERT_EXECUTIONS: Insert = insert(EXECUTIONS)
INSERT_STEPS: Insert = insert(STEPS)

# a batch's claim: every id still pending, answering the ids it took
CLAIM_EVENTS: Update = (
    update(EVENTS)
    .where(EVENTS.c.id.in_(bindparam("ids", expanding=True)),
           EVENTS.c.status == EventStatus.pending)
    .values(status=EventStatus.processed, processed_at=bindparam("processed_at"))
    .returning(EVENTS.c.id)
)
SET_MATCHED_COUNT: Update = (
    update(EVENTS).where(EVENTS.c.id == bindparam("k_id"))
    .values(matched_count=bindparam("matched_count"))
)
FAIL_EVENT: Update = (
    update(EVENTS)
    .where(EVENTS.c.id == bindparam("k_id"), EVENTS.c.status == EventStatus.pending)
    .values(status=EventStatus.failed, processed_at=bindparam("processed_at"),
            error=bindparam("error"))
)

# a step's claim (pending/waiting → running), counting the attempt
CLAIM_STEP: Update = (
    update(STEPS)
    .where(STEPS.c.execution_id == bindparam("k_execution_id"),
           STEPS.c.position == bindparam("k_position"),
           STEPS.c.status.in_([StepStatus.pending, StepStatus.waiting]))
    .values(status=StepStatus.running, started_at=bindparam("started_at"),
            attempts=STEPS.c.attempts + 1, next_attempt_at=None,
            claimed_by=bindparam("claimed_by"))
)


@lru_cache(maxsize=64)
def update_step(columns: tuple[str, ...], owned: bool, owner_known: bool) -> Update:
    """UPDATE of a step's ``columns`` by its (execution, position) key; ``owned``: only
    while it is running under this worker's claim (``k_me``; no worker name: unclaimed).
    Parameters: k_execution_id, k_position, [k_me], and one per column."""
    stmt = update(STEPS).where(STEPS.c.execution_id == bindparam("k_execution_id"),
                               STEPS.c.position == bindparam("k_position"))
    if owned:
        stmt = stmt.where(STEPS.c.status == StepStatus.running,
                          STEPS.c.claimed_by == bindparam("k_me") if owner_known
                          else STEPS.c.claimed_by.is_(None))
    return stmt.values({c: bindparam(c) for c in columns})


@lru_cache(maxsize=16)
def update_open_step(columns: tuple[str, ...]) -> Update:
    """UPDATE of a step's ``columns`` while nobody runs it (pending or waiting), by its
    (execution, position) key: a hold written without a claim never clobbers one."""
    return (update(STEPS).where(STEPS.c.execution_id == bindparam("k_execution_id"),
                                STEPS.c.position == bindparam("k_position"),
                                STEPS.c.status.in_([StepStatus.pending, StepStatus.waiting]))
            .values({c: bindparam(c) for c in columns}))


@lru_cache(maxsize=16)
def update_execution(columns: tuple[str, ...]) -> Update:
    """UPDATE of an execution's ``columns`` by id (``k_id``)."""
    return (update(EXECUTIONS).where(EXECUTIONS.c.id == bindparam("k_id"))
            .values({c: bindparam(c) for c in columns}))
