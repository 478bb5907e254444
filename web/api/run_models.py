"""Pydantic models of the API's bodies about runs: events, executions, steps, stats.

The catalog's (sources, rules, secrets, drafts) and the shared base models are in
``web.api.models``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from engine.store.models import EventStatus, ExecutionStatus, StepStatus
from web.api.models import Model, PageOut, PageQuery, Record


class EventQuery(PageQuery):
    source: str | None = None
    status: EventStatus | None = None
    since: datetime | None = Field(None, description="ISO 8601; naive times are UTC")
    until: datetime | None = Field(None, description="ISO 8601, exclusive")
    q: str | None = Field(None, description="text searched in the raw body (or an event id)")
    path: str | None = Field(None, description="JSONPath over the event document, e.g. "
                                               "$.body.type; keeps events where it selects "
                                               "something")
    value: str | None = Field(None, description="with `path`: keep events where a selected "
                                                "value equals this")
    outcome: Literal["failed", "waiting", "succeeded", "no_match", "pending"] | None = Field(
        None, description="the worst outcome of the event's latest round: failed (matching "
                          "or an execution failed), waiting (an execution is still open), "
                          "succeeded (all executions succeeded), no_match, pending (not "
                          "matched yet)")


class EventSummary(Record):
    id: str
    source: str
    received_at: datetime
    status: EventStatus
    method: str
    content_type: str
    dedup_key: str | None
    matched_count: int
    match_round: int
    processed_at: datetime | None
    error: str | None
    outcome: str = Field(description="failed, waiting, succeeded, no_match or pending "
                                     "(see the `outcome` filter)")
    parent_id: str | None = Field(None, description="emitted by an emit step: the event "
                                                    "whose chain emitted it")
    emit_depth: int = Field(0, description="how many emits from a webhook this event is")


class EventPage(PageOut):
    items: list[EventSummary]


class EventRecord(EventSummary):
    headers: dict[str, Any]
    query: dict[str, Any]
    body: Any
    raw_body: str
    emitted: bool = Field(False, description="raised by an emit step (not a webhook)")
    emitted_events: list[str] = Field(default_factory=list,
                                      description="events this event's chains emitted")


class MatchTraceOut(Record):
    id: int
    event_id: str
    match_round: int
    rule_name: str
    rule_version: int
    matched: bool
    reason: str | None
    trace: dict[str, Any] | None
    created_at: datetime


class StepRunOut(Record):
    id: int
    execution_id: str
    position: int
    step_id: str
    type: str
    status: StepStatus
    attempts: int
    rendered: Any
    output: Any
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None
    duration_ms: float | None
    parent_position: int | None = Field(None, description="a step inside a flow block: the "
                                                          "block's position")
    item_index: int | None = Field(None, description="a step inside a foreach: its item")


class ExecutionOut(Record):
    id: str
    event_id: str
    rule_name: str
    rule_version: int
    status: ExecutionStatus
    error: str | None
    replay_of: str | None
    match_round: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class ExecutionDetail(ExecutionOut):
    steps: list[StepRunOut]


class ExecutionPage(PageOut):
    items: list[ExecutionOut]


class EventDetail(Model):
    event: EventRecord
    matches: list[MatchTraceOut] = Field(description="every round's match traces, newest "
                                                     "round first")
    executions: list[ExecutionDetail]


class ReplayIn(Model):
    rules: Literal["now", "then"] = Field(
        "now", description="now: match again with today's rules; then: re-run the rules that "
                           "matched last time, at the versions they ran with")


class ReplayOut(Model):
    event_id: str
    round: int = Field(description="the new match round")


class ExecutionQuery(PageQuery):
    status: ExecutionStatus | None = None
    rule: str | None = None
    event_id: str | None = None


class RetryOut(Model):
    execution_id: str
    status: ExecutionStatus


class RetryNowOut(Model):
    execution_id: str
    step_id: str = Field(description="the step that runs now")
    status: ExecutionStatus


class CancelOut(Model):
    execution_id: str
    status: ExecutionStatus
    error: str


class BulkRetryIn(Model):
    execution_ids: list[str] | None = Field(
        None, max_length=1000, description="retry these (each must have failed); or select "
                                           "by the event filters below")
    source: str | None = None
    status: EventStatus | None = None
    since: datetime | None = Field(None, description="ISO 8601; naive times are UTC")
    until: datetime | None = Field(None, description="ISO 8601, exclusive")
    q: str | None = Field(None, description="text searched in the raw body (or an event id)")
    path: str | None = Field(None, description="JSONPath over the event document")
    value: str | None = Field(None, description="with `path`: a selected value equals this")


class SkippedOut(Model):
    execution_id: str
    reason: str


class BulkRetryOut(Model):
    batch: str = Field(description="GET /executions/batches/{batch} reports progress")
    total: int
    retried: list[str]
    skipped: list[SkippedOut]


class BatchOut(Model):
    batch: str
    total: int
    finished: int
    succeeded: int
    failed: int
    open: int
    done: bool
    percent: int


# -- stats -----------------------------------------------------------------------------
class Timeseries(Model):
    start: datetime
    end: datetime
    labels: list[datetime]
    events: list[int]
    failures: list[int]


class Counts(Model):
    events: dict[str, int]
    executions: dict[str, int]


class QueueStats(Model):
    queued: int
    scheduled: int


class StatsOut(Model):
    timeseries: Timeseries
    counts: Counts
    queue: QueueStats | None = Field(description="null when Redis cannot be reached")
