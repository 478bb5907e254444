"""SQLModel tables: the durable record of sources, rules, events and everything run.

The database is the record; Redis only carries work. Every status is an enum so the
UI, the API and the sweeper agree on what a row means.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from engine.ids import utcnow
from rules.document import build_event_document


class EventStatus(StrEnum):
    pending = "pending"  # stored, not yet matched
    processed = "processed"  # matched; executions (if any) created
    failed = "failed"  # could not be matched (e.g. the worker raised); see error


class ExecutionStatus(StrEnum):
    pending = "pending"
    running = "running"
    waiting = "waiting"  # a retry or delay is scheduled
    succeeded = "succeeded"
    failed = "failed"


class StepStatus(StrEnum):
    pending = "pending"
    running = "running"
    waiting = "waiting"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"


def status_type(enum: type[Enum]) -> SAEnum:
    """A VARCHAR(16) column that reads back as the enum (no database enum type, so
    adding a status needs no migration)."""
    return SAEnum(enum, native_enum=False, create_constraint=False, length=16,
                  values_callable=lambda e: [m.value for m in e])


FINISHED_STEP = (StepStatus.succeeded, StepStatus.failed, StepStatus.skipped)


class Source(SQLModel, table=True):
    __tablename__ = "sources"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True, index=True)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Destination(SQLModel, table=True):
    """Limits for outgoing calls to one destination (``rules.schema.DestinationSpec``)."""

    __tablename__ = "destinations"

    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=300, unique=True, index=True)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Connection(SQLModel, table=True):
    """A named base URL + auth + headers for webhook steps
    (``rules.connection_models.ConnectionSpec``; secret names only, never values)."""

    __tablename__ = "connections"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Rule(SQLModel, table=True):
    __tablename__ = "rules"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True, index=True)
    source: str = Field(max_length=64, index=True)
    enabled: bool = True
    priority: int = 0
    version: int = 1  # bumped on every change of spec
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class RuleRevision(SQLModel, table=True):
    """Every version of every rule, so an execution can always show what it ran."""

    __tablename__ = "rule_revisions"
    __table_args__ = (UniqueConstraint("rule_name", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_name: str = Field(max_length=128, index=True)
    version: int
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class RuleHistoryAction(StrEnum):
    created = "created"
    updated = "updated"  # a new version of the rule's document
    renamed = "renamed"
    restored = "restored"  # a new version equal to an older one
    enabled = "enabled"  # switched on: no new version
    disabled = "disabled"
    deleted = "deleted"


class RuleHistory(SQLModel, table=True):
    """Who changed a rule, what and when: one row per save, rename, switch or delete
    (kept after the rule is deleted; follows the rule through renames)."""

    __tablename__ = "rule_history"
    __table_args__ = (Index("ix_rule_history_rule_created", "rule_name", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_name: str = Field(max_length=128)
    action: RuleHistoryAction = Field(sa_type=status_type(RuleHistoryAction))
    version: int | None = None  # the version this entry made, or the one it switched
    actor: str | None = Field(default=None, max_length=200)  # user:EMAIL, token:NAME, cli:USER
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class Meta(SQLModel, table=True):
    """Small key/value counters, e.g. ``ruleset_version`` bumped on every rule change."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True, max_length=64)
    value: int = 0


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source", "dedup_key", name="uq_events_source_dedup"),
        Index("ix_events_source_received", "source", "received_at"),
        Index("ix_events_status_received", "status", "received_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    source: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow)
    status: EventStatus = Field(default=EventStatus.pending, sa_type=status_type(EventStatus))
    method: str = "POST"
    content_type: str = ""
    headers: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    query: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    body: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    raw_body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    dedup_key: str | None = Field(default=None, max_length=255)
    matched_count: int = 0
    match_round: int = 0  # 0 for the first match; each replay matches again as a new round
    processed_at: datetime | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # raised by an ``emit`` step: the event whose chain emitted it, and how deep
    parent_id: str | None = Field(default=None, max_length=40, index=True)
    emit_depth: int = 0


class MatchTrace(SQLModel, table=True):
    """Why a rule did or did not match an event."""

    __tablename__ = "match_traces"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=40, index=True)
    match_round: int = 0
    rule_name: str = Field(max_length=128)
    rule_version: int
    matched: bool
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    trace: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class Execution(SQLModel, table=True):
    """One run of one rule's action chain for one event."""

    __tablename__ = "executions"
    __table_args__ = (Index("ix_executions_status_updated", "status", "updated_at"),)

    id: str = Field(primary_key=True, max_length=40)
    event_id: str = Field(max_length=40, index=True)
    rule_name: str = Field(max_length=128, index=True)
    rule_version: int
    status: ExecutionStatus = Field(
        default=ExecutionStatus.pending, sa_type=status_type(ExecutionStatus)
    )
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    replay_of: str | None = Field(default=None, max_length=40)
    match_round: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class StepRun(SQLModel, table=True):
    """One step of an execution: its rendered input, output, attempts and timing."""

    __tablename__ = "step_runs"
    __table_args__ = (UniqueConstraint("execution_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    execution_id: str = Field(max_length=40, index=True)
    position: int
    step_id: str = Field(max_length=64)
    type: str = Field(max_length=32)
    status: StepStatus = Field(default=StepStatus.pending, sa_type=status_type(StepStatus))
    attempts: int = 0
    rendered: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    output: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    duration_ms: float | None = None
    claimed_by: str | None = Field(default=None, max_length=128)  # the worker running it
    # a step inside a flow block: the block's row (its position) and the foreach item
    parent_position: int | None = None
    item_index: int | None = None


class Secret(SQLModel, table=True):
    __tablename__ = "secrets"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True, index=True)
    value_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ConversationState(SQLModel, table=True):
    """Per-conversation memory for ``state`` steps and ``state(key)`` in templates."""

    __tablename__ = "conversation_state"

    key: str = Field(primary_key=True, max_length=255)
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    expires_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    """A person who logs in to the web UI."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None


class ApiToken(SQLModel, table=True):
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True, index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=12)  # first characters, to tell tokens apart in lists
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None


def event_document(event: Event) -> dict[str, Any]:
    """What a rule's paths and templates see of a stored event."""
    meta = {"id": event.id, "source": event.source, "received_at": event.received_at.isoformat()}
    if getattr(event, "parent_id", None):
        meta["parent_id"] = str(event.parent_id)
    return build_event_document(event.body, event.headers, event.query, meta)
class RejectedRequest(SQLModel, table=True):
    """A webhook answered 400/401/413/415/429: what came, and why it was refused.

    Bounded and expiring (``engine.store.rejections``); headers are stored without
    credentials and the body only as its first few KB."""

    __tablename__ = "rejected_requests"
    __table_args__ = (Index("ix_rejected_source_received", "source", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow, index=True)
    status: int
    code: str = Field(max_length=64)  # the error code of the answer, e.g. verification_failed
    reason: str = Field(sa_column=Column(Text, nullable=False))
    method: str = Field(default="POST", max_length=16)
    content_type: str = Field(default="", max_length=255)
    headers: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    query: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    body_excerpt: str = Field(default="", sa_column=Column(Text, nullable=False))
    body_size: int = 0
    remote_addr: str | None = Field(default=None, max_length=64)


class InspectedRequest(SQLModel, table=True):
    """A request the built-in inspector (``/inspect/<name>``) received (bounded)."""

    __tablename__ = "inspected_requests"
    __table_args__ = (Index("ix_inspected_name_id", "name", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow)
    method: str = Field(max_length=16)
    content_type: str = Field(default="", max_length=255)
    headers: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    query: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    body_size: int = 0
    remote_addr: str | None = Field(default=None, max_length=64)


