"""Matching a batch of stored events and running what matched.

Safe to run twice: ``process_events`` claims each event with a conditional update in the
same transaction that records the match, and an event found already claimed has its
open executions resumed at their first unfinished step. The RQ entry points that call
this are in ``engine.work.jobs``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlmodel import Session, select

from engine.ids import utcnow
from engine.run.chain import ChainRunner
from engine.run.dispatch import Work
from engine.run.executions import NewExecution, insert_executions, new_execution
from engine.run.release import no_reply_coming
from engine.runtime import Runtime
from engine.store import statements as sql
from engine.store.models import (
    Event,
    EventStatus,
    Execution,
    ExecutionStatus,
    StepRun,
    event_document,
)
from rules.match import MatchResult

log = logging.getLogger(__name__)

TRACE_ALL_RULES = 200
OPEN_EXECUTION = (ExecutionStatus.pending, ExecutionStatus.running)

Created = tuple[Execution, list[StepRun], bool]  # bool: its first step is claimed already


Submit = Callable[[Work], object]


def run_inline(rt: Runtime) -> Submit:
    """Run each chain to its end (or its wait) in the caller's thread, one after the
    other: the ``submit`` of a process without delivery threads."""
    runner = ChainRunner(rt)

    def run(work: Work) -> None:
        try:
            runner.run(work.execution_id, loaded=work.loaded, first_claimed=work.first_claimed)
        except Exception:  # the batch's other chains go on; the sweeper resumes this one
            log.exception("execution %s stopped", work.execution_id)

    return run


def process_events(rt: Runtime, event_ids: list[str],
                   before_each: Callable[[], object] | None = None,
                   submit: Submit | None = None) -> list[dict[str, object]]:
    """Match a batch of stored events in one read and one transaction, then hand each
    matching rule's chain to ``submit`` (a worker's ``Dispatcher.submit``; by default
    they run inline). ``before_each`` is called before each event's chains are handed
    over (the inbox drain refreshes its ownership there)."""
    submit = submit or run_inline(rt)
    with Session(rt.db) as s:
        found = {e.id: e for e in s.exec(
            select(Event).where(Event.id.in_(event_ids)))}  # type: ignore[attr-defined]
    answers: dict[str, dict[str, object]] = {}
    fresh: list[Event] = []
    for event_id in event_ids:
        event = found.get(event_id)
        if event is None:
            log.warning("event %s not found", event_id)
            answers[event_id] = {"event_id": event_id, "found": False}
        elif event.status != EventStatus.pending:
            # A duplicate job, or one re-queued after a crash: resume whatever is open.
            answers[event_id] = _resume(rt, submit, event_id)
        else:
            fresh.append(event)
    if fresh:
        # A database error leaves the batch pending (the transaction rolls back) for the
        # sweeper to retry; an event the matcher cannot handle is marked failed alone.
        created = match_events(rt, fresh)
        for event in fresh:
            execs = created.get(event.id)
            if execs is None:  # another worker claimed it; it runs the chains and replies
                answers[event.id] = {"event_id": event.id, "claimed_elsewhere": True}
                continue
            if before_each is not None:
                before_each()
            # a flow block may hold a reply step: its chain releases the caller if not
            if not any(st.type in ("reply", "branch", "foreach")
                       for _, steps, _ in execs for st in steps):
                no_reply_coming(rt, event.source, event.id)
            for ex, steps, first_claimed in execs:  # what was just written: no re-reads
                submit(Work(ex.id, loaded=(ex, event, steps), first_claimed=first_claimed))
            answers[event.id] = {"event_id": event.id,
                                 "executions": [ex.id for ex, _, _ in execs]}
    return [answers[i] for i in event_ids]


def _resume(rt: Runtime, submit: Submit, event_id: str) -> dict[str, object]:
    with Session(rt.db) as s:
        open_ids = list(s.exec(select(Execution.id).where(
            Execution.event_id == event_id,
            Execution.status.in_(OPEN_EXECUTION))))  # type: ignore[attr-defined]
    for ex_id in open_ids:
        submit(Work(ex_id))
    return {"event_id": event_id, "resumed": open_ids}


def match_events(rt: Runtime, events: list[Event]) -> dict[str, list[Created]]:
    """Record a MatchTrace for every rule looked at and an Execution (with its steps)
    for every rule that matched — in the one transaction that claims the events. The
    executions start as ``running``: this worker runs them next (if it dies first, the
    sweeper re-queues its job). A first step that needs no decision first (no ``when``,
    not a delay) is written already claimed by this worker, saving the claim's own
    transaction. Answers the executions per event this call claimed; an event another
    worker claimed first is left out."""
    ruleset, versions = rt.catalog.ruleset()
    now = utcnow()
    traces: list[dict[str, object]] = []
    to_insert: list[NewExecution] = []
    created: dict[str, list[Created]] = {}
    matched: list[tuple[Event, list[MatchResult]]] = []
    failed: list[dict[str, object]] = []
    for event in events:
        # Explain every rule looked at while that is cheap; past TRACE_ALL_RULES rules for
        # a source, only matching rules get a stored trace — why another rule did not
        # fire is answered on demand (POST /api/v1/rules/test with the event_id, or the
        # rule builder).
        explain = ruleset.considered(event.source) <= TRACE_ALL_RULES
        try:
            matched.append((event, ruleset.match(event_document(event), event.source,
                                                 explain_excluded=explain)))
        except Exception as exc:  # a bug: recorded on the event, the batch goes on
            log.exception("matching event %s failed", event.id)
            failed.append({"k_id": event.id, "processed_at": now,
                           "error": f"{type(exc).__name__}: {exc}"})
    with rt.db.begin() as conn:
        if failed:
            conn.execute(sql.FAIL_EVENT, failed)
        claimed = set(conn.execute(sql.CLAIM_EVENTS, {
            "ids": [e.id for e, _ in matched], "processed_at": now}).scalars()) \
            if matched else set()
        counts = []
        for event, results in matched:
            if event.id not in claimed:
                continue  # another worker matched it first
            counts.append({"k_id": event.id,
                           "matched_count": sum(1 for r in results if r.matched)})
            mine = created[event.id] = []
            for r in results:
                version = versions.get(r.rule.name, 0)
                traces.append({"event_id": event.id, "match_round": event.match_round,
                               "rule_name": r.rule.name, "rule_version": version,
                               "matched": r.matched, "reason": r.reason, "trace": r.trace,
                               "created_at": now})
                if not r.matched:
                    continue
                new = new_execution(r.rule, event_id=event.id, version=version,
                                    match_round=event.match_round, now=now,
                                    status=ExecutionStatus.running,
                                    claim_first=True, claim_first_by=rt.worker_name)
                to_insert.append(new)
                mine.append((new.execution, new.steps, new.first_claimed))
        if counts:
            conn.execute(sql.SET_MATCHED_COUNT, counts)
        if traces:
            conn.execute(sql.INSERT_TRACES, traces)
        insert_executions(conn, to_insert)
    return created
