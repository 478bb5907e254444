"""What a chain's turn ends with: one step's ``Outcome`` and ``RunResult`` of a run."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from engine.store.models import ExecutionStatus


class Outcome(Enum):
    """What one step's turn left the chain with."""

    NEXT = "next"  # the step finished (or was skipped, or failed with on_error: continue)
    SUCCEEDED = "succeeded"  # the last step finished the execution
    FAILED = "failed"  # the step failed and so did the execution
    WAITING = "waiting"  # a retry or a delay is scheduled; this job ends
    NOT_MINE = "not_mine"  # another job holds the step (or took it from us): leave it

    @property
    def status(self) -> ExecutionStatus | None:
        """The execution's status after this outcome (None: someone else decides)."""
        return _STATUS.get(self)


_STATUS = {Outcome.SUCCEEDED: ExecutionStatus.succeeded, Outcome.FAILED: ExecutionStatus.failed,
           Outcome.WAITING: ExecutionStatus.waiting}


@dataclass(frozen=True)
class RunResult:
    """How ``ChainRunner.run`` left an execution."""

    status: ExecutionStatus | None  # None: another job has it, or it is parked
    parked_on: str | None = None  # the destination whose slot it waits for
