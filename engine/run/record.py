"""Writing a chain's progress: claims, step results and execution status, each its own
short transaction, so what is committed is where a crash resumes.

A step is claimed with a conditional update (pending/waiting → running, attempts + 1).
A write of a claimed step's result (``owned``) only lands while this worker still holds
the claim: the sweeper may have given a stuck step to another worker meanwhile.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from engine.ids import utcnow
from engine.store import statements as sql
from engine.store.group_commit import StatementWriter
from engine.store.models import ExecutionStatus, StepRun, StepStatus


class Recorder:
    """Step and execution writes for one worker (``me``: its RQ name, None outside one),
    through the process's group commit (``writer``): a worker with many steps in flight
    commits their claims and results together, each caller still returning only once
    its own write is committed."""

    def __init__(self, writer: StatementWriter, me: str | None):
        self.writer = writer
        self.me = me

    def claim(self, st: StepRun) -> bool:
        """Take the step (answers False when another job has it)."""
        return bool(self.writer.execute(sql.CLAIM_STEP, {
            "k_execution_id": st.execution_id, "k_position": st.position,
            "started_at": utcnow(), "claimed_by": self.me}))

    def unclaim(self, st: StepRun) -> bool:
        """Give back a claim this worker holds on a step it did not start (``st``: the
        row as it was before the claim), without spending the attempt."""
        return self.update_step(st, owned=True, status=st.status, attempts=st.attempts,
                                started_at=st.started_at, claimed_by=None)

    def hold(self, st: StepRun, *, until: datetime, reason: str, claimed: bool) -> bool:
        """Put a step that did not start back to ``waiting`` until ``until`` (a paused or
        rate-limited destination), its attempt not spent (``st``: the row as it was
        before any claim this worker holds)."""
        values: dict[str, Any] = {"status": StepStatus.waiting, "next_attempt_at": until,
                                  "error": reason, "attempts": st.attempts}
        if claimed:
            return self.update_step(st, owned=True, claimed_by=None, **values)
        return bool(self.writer.execute(sql.update_open_step(tuple(values)), {
            "k_execution_id": st.execution_id, "k_position": st.position, **values}))

    def update_step(self, st: StepRun, *, owned: bool = False,
                    then_execution: dict[str, Any] | None = None, **values: Any) -> bool:
        """Write the step; ``then_execution``: values for the execution, written in the
        same transaction if the step was. Answers whether it wrote."""
        stmt = sql.update_step(tuple(values), owned, self.me is not None)
        params = {"k_execution_id": st.execution_id, "k_position": st.position,
                  "k_me": self.me, **values}
        then = None if then_execution is None else (
            sql.update_execution(tuple(then_execution)),
            {"k_id": st.execution_id, **then_execution})
        return bool(self.writer.execute(stmt, params, then=then))

    def finish(self, st: StepRun, status: StepStatus, *, error: str | None = None,
               rendered: Any = None, output: Any = None, started: float | None = None,
               owned: bool = False, then_execution: dict[str, Any] | None = None) -> bool:
        """The step's final result (succeeded, failed or skipped)."""
        values: dict[str, Any] = {"status": status, "error": error, "finished_at": utcnow(),
                                  "output": output, "next_attempt_at": None}
        if rendered is not None:
            values["rendered"] = rendered
        if started is not None:
            values["duration_ms"] = elapsed_ms(started)
        wrote = self.update_step(st, owned=owned, then_execution=then_execution, **values)
        if wrote:  # a block reads its steps' results from these rows when it ends
            remember(st, status=status, output=output)
        return wrote

    def decide(self, st: StepRun, decision: dict[str, Any],
               rows: list[dict[str, Any]]) -> bool:
        """A flow block this worker holds: store its decision (which case, which items)
        and, in the same transaction, the rows of the steps it will run."""
        stmt = sql.update_step(("rendered",), True, self.me is not None)
        params = {"k_execution_id": st.execution_id, "k_position": st.position,
                  "k_me": self.me, "rendered": decision}
        return bool(self.writer.execute(stmt, params,
                                        then=(sql.INSERT_STEPS, rows)  # type: ignore[arg-type]
                                        if rows else None))

    def set_execution(self, execution_id: str, status: ExecutionStatus, *,
                      error: str | None = None, finished: bool = False) -> None:
        values = execution_values(status, error=error, finished=finished)
        self.writer.execute(sql.update_execution(tuple(values)), {"k_id": execution_id, **values})


def execution_values(status: ExecutionStatus, *, error: str | None = None,
                     finished: bool = False) -> dict[str, Any]:
    """The columns an execution's status change writes."""
    now = utcnow()
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if finished:
        values.update(finished_at=now, error=error)
    return values


def remember(st: StepRun, **values: Any) -> None:
    """Keep the in-memory row in step with what was written (rows built with
    ``model_construct`` are not ORM-instrumented: their fields live in ``__dict__``)."""
    try:
        for name, value in values.items():
            setattr(st, name, value)
    except AttributeError:
        st.__dict__.update(values)


def elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)
