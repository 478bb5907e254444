"""RQ job functions. They take ids only and find everything else in the database.

Both are safe to run twice: ``process_event`` claims the event with a conditional
update in the same transaction that records the match, and ``run_execution`` resumes
at the first unfinished step.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlmodel import Session, select

from engine import replies, runtime
from engine.chain import ChainRunner, event_document
from engine.db import session_scope
from engine.models import (
    Event,
    EventStatus,
    Execution,
    ExecutionStatus,
    MatchTrace,
    StepRun,
    new_id,
    utcnow,
)

log = logging.getLogger(__name__)

TRACE_ALL_RULES = 200
OPEN_EXECUTION = (ExecutionStatus.pending, ExecutionStatus.running)


def process_event(event_id: str) -> dict[str, object]:
    """Match a stored event against the rules and run each matching rule's chain."""
    rt = runtime.current()
    with Session(rt.db) as s:
        event = s.get(Event, event_id)
    if event is None:
        log.warning("event %s not found", event_id)
        return {"event_id": event_id, "found": False}
    runner = ChainRunner(rt)
    if event.status != EventStatus.pending:
        # A duplicate job, or one re-queued after a crash: resume whatever is open.
        with Session(rt.db) as s:
            open_ids = list(s.exec(select(Execution.id).where(
                Execution.event_id == event_id,
                Execution.status.in_(OPEN_EXECUTION))))  # type: ignore[attr-defined]
        for ex_id in open_ids:
            runner.run(ex_id)
        return {"event_id": event_id, "resumed": open_ids}
    try:
        created = match_event(event)
    except Exception as exc:
        log.exception("matching event %s failed", event_id)
        with session_scope(rt.db) as s:
            s.execute(
                update(Event).where(Event.id == event_id)  # type: ignore[arg-type]
                .values(status=EventStatus.failed, error=f"{type(exc).__name__}: {exc}",
                        processed_at=utcnow())
            )
        raise
    if created is None:  # another worker claimed it; it runs the chains and replies
        return {"event_id": event_id, "claimed_elsewhere": True}
    if not any(st.type == "reply" for _, steps in created for st in steps):
        replies.no_reply_coming(rt, event.source, event.id)
    for ex, steps in created:  # run at once with what was just written: no re-reads
        runner.run(ex.id, loaded=(ex, event, steps))
    return {"event_id": event_id, "executions": [ex.id for ex, _ in created]}


def match_event(event: Event) -> list[tuple[Execution, list[StepRun]]] | None:
    """Record a MatchTrace for every rule looked at and an Execution (with its steps)
    for every rule that matched — all in the transaction that claims the event. The
    executions start as ``running``: this worker runs them next (if it dies first, the
    sweeper re-queues its job)."""
    rt = runtime.current()
    ruleset, versions = rt.catalog.ruleset()
    # Explain every rule looked at while that is cheap; past TRACE_ALL_RULES rules for a
    # source, only matching rules get a stored trace — why another rule did not fire is
    # answered on demand (POST /api/v1/rules/test with the event_id, or the rule builder).
    explain = ruleset.considered(event.source) <= TRACE_ALL_RULES
    results = ruleset.match(event_document(event), event.source, explain_excluded=explain)
    created: list[tuple[Execution, list[StepRun]]] = []
    with session_scope(rt.db) as s:
        claimed = s.execute(
            update(Event)
            .where(Event.id == event.id, Event.status == EventStatus.pending)  # type: ignore[arg-type]
            .values(status=EventStatus.processed, processed_at=utcnow(),
                    matched_count=sum(1 for r in results if r.matched))
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return None  # another worker matched it first
        for r in results:
            version = versions.get(r.rule.name, 0)
            s.add(MatchTrace(event_id=event.id, match_round=event.match_round,
                             rule_name=r.rule.name, rule_version=version,
                             matched=r.matched, reason=r.reason, trace=r.trace))
            if not r.matched:
                continue
            ex = Execution(id=new_id("exe"), event_id=event.id, rule_name=r.rule.name,
                           rule_version=version, match_round=event.match_round,
                           status=ExecutionStatus.running)
            steps = [StepRun(execution_id=ex.id, position=pos, step_id=step.id,
                             type=step.type) for pos, step in enumerate(r.rule.steps)]
            s.add(ex)
            s.add_all(steps)
            created.append((ex, steps))
    return created


def run_execution(execution_id: str) -> str | None:
    """Run (or resume) one execution's chain."""
    status = ChainRunner(runtime.current()).run(execution_id)
    return status.value if status else None
