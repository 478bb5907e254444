"""What people do to runs: replay an event, retry a failed execution, backtest a draft.

Replay matches a stored event again with the rules in force now, as a new *round*
(traces and executions of earlier rounds are kept). Retry resumes a failed execution
at its failed step with the rule version it ran with. Backtest evaluates a draft rule
over stored events without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from engine.broker.queue import enqueue_event, enqueue_execution
from engine.errors import Conflict, NotFound
from engine.ids import utcnow
from engine.run.executions import insert_executions, new_execution
from engine.runtime import Runtime
from engine.store.db import session_scope
from engine.store.models import (
    Event,
    EventStatus,
    Execution,
    ExecutionStatus,
    MatchTrace,
    StepRun,
    StepStatus,
    event_document,
)
from rules.compiled import compile_rule
from rules.match import RuleSet
from rules.schema import RuleSpec

BACKTEST_MAX = 1000


def replay_event(rt: Runtime, event_id: str, *, rules: str = "now") -> int:
    """Run a stored event again as a new round; answers the round number.

    ``rules="now"`` matches it again with the rules in force today; ``rules="then"``
    re-runs the rules that matched last time, at the versions they ran with (no new
    matching; their traces are carried into the new round).
    """
    if rules not in ("now", "then"):
        raise ValueError(f"rules must be 'now' or 'then', not {rules!r}")
    created: list[str] = []
    with session_scope(rt.db) as s:
        event = s.get(Event, event_id)
        if event is None:
            raise NotFound(f"no event {event_id}")
        if event.status == EventStatus.pending:
            raise Conflict(f"event {event_id} has not been matched yet")
        new_round = event.match_round + 1
        if rules == "now":
            s.execute(
                update(Event).where(Event.id == event_id)  # type: ignore[arg-type]
                .values(status=EventStatus.pending, match_round=new_round, error=None)
            )
        else:
            created = _copy_round(rt, s, event, new_round)
    if rules == "now":
        enqueue_event(rt.queue, event_id)
    for ex_id in created:
        enqueue_execution(rt.queue, ex_id)
    return new_round


def _copy_round(rt: Runtime, s: Session, event: Event, new_round: int) -> list[str]:
    """New executions (all steps pending) for the last round's matched rules, each at the
    rule version it ran with."""
    old_round = event.match_round
    traces = s.exec(select(MatchTrace).where(MatchTrace.event_id == event.id,
                                             MatchTrace.match_round == old_round)).all()
    runs = s.exec(select(Execution).where(Execution.event_id == event.id,
                                          Execution.match_round == old_round)).all()
    for t in traces:
        s.add(MatchTrace(event_id=event.id, match_round=new_round, rule_name=t.rule_name,
                         rule_version=t.rule_version, matched=t.matched,
                         reason=t.reason, trace=t.trace))
    now = utcnow()
    created = [new_execution(rt.catalog.compiled_revision(old.rule_name, old.rule_version),
                             event_id=event.id, version=old.rule_version,
                             match_round=new_round, now=now, status=ExecutionStatus.pending,
                             replay_of=old.id)
               for old in runs]
    s.flush()  # the traces above, before the executions' own statements
    insert_executions(s.connection(), created)
    s.execute(update(Event).where(Event.id == event.id)  # type: ignore[arg-type]
              .values(match_round=new_round, matched_count=len(created)))
    return [n.execution.id for n in created]


def retry_execution(rt: Runtime, execution_id: str) -> None:
    """Resume a failed execution at its failed step(s); finished steps are kept."""
    with session_scope(rt.db) as s:
        ex = s.get(Execution, execution_id)
        if ex is None:
            raise NotFound(f"no execution {execution_id}")
        if ex.status != ExecutionStatus.failed:
            raise Conflict(f"execution {execution_id} is {ex.status}, not failed")
        s.execute(
            update(StepRun)
            .where(StepRun.execution_id == execution_id,  # type: ignore[arg-type]
                   StepRun.status == StepStatus.failed)  # type: ignore[arg-type]
            .values(status=StepStatus.pending, next_attempt_at=None)
        )
        s.execute(
            update(Execution).where(Execution.id == execution_id)  # type: ignore[arg-type]
            .values(status=ExecutionStatus.pending, error=None, finished_at=None,
                    updated_at=utcnow())
        )
    enqueue_execution(rt.queue, execution_id)


@dataclass
class BacktestRow:
    event_id: str
    received_at: str
    matched: bool
    reason: str | None
    trace: dict[str, Any]


def backtest(rt: Runtime, spec: RuleSpec, *, source: str | None = None,
             limit: int = 50) -> list[BacktestRow]:
    """Evaluate ``spec``'s conditions over the newest ``limit`` stored events of its
    source (newest first). Nothing runs."""
    limit = max(1, min(limit, BACKTEST_MAX))
    src = source or spec.source
    ruleset = RuleSet([compile_rule(spec.model_copy(update={"enabled": True}))])
    with Session(rt.db) as s:
        q = select(Event).order_by(Event.received_at.desc()).limit(limit)  # type: ignore[attr-defined]
        if src != "*":
            q = q.where(Event.source == src)
        events = list(s.exec(q))
    rows = []
    for ev in events:
        results = ruleset.match(event_document(ev), ev.source)
        if not results:
            continue
        res = results[0]
        rows.append(BacktestRow(ev.id, ev.received_at.isoformat(), res.matched, res.reason,
                                res.trace))
    return rows
