"""Pydantic models of the API's request and response bodies and query strings.

Requests are validated with them; the OpenAPI document is generated from them. Rule
and source documents are validated by ``rules.schema`` (``RuleSpec``/``SourceSpec``)
so their errors are located relative to the rule; here they appear as references to
those schemas. Response models of stored rows allow extra fields: a column added to a
table shows up in the API before the document names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from rules.model_base import Priority
from rules.schema import SourceSpec

MAX_LIMIT = 200
SCHEMA_REF = "#/components/schemas/{model}"

RuleDoc = Annotated[
    dict[str, Any],
    # wrapped in allOf: pydantic resolves a bare sibling-carrying $ref among its own defs
    WithJsonSchema({"allOf": [{"$ref": SCHEMA_REF.format(model="RuleSpec")}]}),
]
"""A rule document (README "Rules"), validated by ``rules.schema.parse_rule`` so its
problems are located relative to the rule."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Record(BaseModel):
    """A stored row as the engine reports it (unknown columns are passed through)."""

    model_config = ConfigDict(extra="allow")


# -- errors ----------------------------------------------------------------------------
class ErrorOut(Model):
    error: str = Field(description="machine-readable code, e.g. not_found, conflict")
    message: str = Field(description="one human sentence")


class FieldProblem(Model):
    loc: str = Field(description="field path relative to the rule/source, e.g. actions[0].url")
    message: str
    value: Any = None


class ValidationErrorOut(ErrorOut):
    errors: list[FieldProblem]


# -- paging ----------------------------------------------------------------------------
MAX_OFFSET = 1_000_000_000  # larger offsets overflow SQL integers; nothing is that deep

class PageQuery(Model):
    limit: int = Field(50, ge=1, description=f"page size; values above {MAX_LIMIT} count as "
                                             f"{MAX_LIMIT}")
    offset: int = Field(0, ge=0, le=MAX_OFFSET)

    @property
    def capped_limit(self) -> int:
        return min(self.limit, MAX_LIMIT)


class CatalogQuery(PageQuery):
    limit: int = Field(MAX_LIMIT, ge=1, description=f"page size (at most {MAX_LIMIT})")


class PageOut(Model):
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last")


# -- sources ---------------------------------------------------------------------------
class SourceOut(SourceSpec):
    """A source document plus where it receives webhooks."""

    ingest_url: str = Field(description="absolute URL that receives this source's webhooks")
    created_at: datetime
    updated_at: datetime


class SourceList(PageOut):
    items: list[SourceOut]


# -- rules -----------------------------------------------------------------------------
class RuleOut(Model):
    name: str
    source: str
    enabled: bool
    priority: int
    version: int = Field(description="bumped on every change of the rule")
    created_at: datetime
    updated_at: datetime
    last_matched_at: datetime | None
    matches: int = Field(description="how many times the rule matched (all rounds)")
    spec: RuleDoc


class RuleList(PageOut):
    items: list[RuleOut]


class RulePatch(Model):
    """Rename a rule, or change its switches, without sending the whole document."""

    name: str | None = Field(default=None, description="a new name: renames the rule, "
                             "keeping its versions, history and executions")
    enabled: bool | None = None
    priority: Priority | None = None

    @model_validator(mode="after")
    def _something(self) -> RulePatch:
        if self.name is None and self.enabled is None and self.priority is None:
            raise ValueError("send `name`, `enabled` and/or `priority`")
        return self


class SourceDeleteQuery(Model):
    rules: Literal["refuse", "delete"] = Field(
        default="refuse", description="what to do with the rules that use the source: "
        "refuse the delete (409), or delete them with it")


class RuleRevisionOut(Model):
    version: int
    created_at: datetime
    actor: str | None = Field(default=None, description="who saved it: user:EMAIL, "
                              "token:NAME or cli:USER (null before history was kept)")
    note: str | None = Field(default=None, description="what changed, e.g. "
                             "'changed when, actions' or 'restored version 2'")
    spec: RuleDoc


class RuleHistoryOut(Model):
    action: Literal["created", "updated", "renamed", "restored", "enabled", "disabled",
                    "deleted"]
    version: int | None
    actor: str | None
    detail: str | None
    created_at: datetime


class RuleRevisionList(Model):
    items: list[RuleRevisionOut]
    history: list[RuleHistoryOut] = Field(
        default_factory=list, description="every save, rename, switch and delete, newest "
        "first (switching a rule on or off makes no new version)")


class EventInput(Model):
    """A sample event for a dry run."""

    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(None, description="the source it came from (default: the "
                                                 "rule's)")


class RuleTestRequest(Model):
    """A draft rule and either a sample event or a stored event's id."""

    rule: RuleDoc
    event: EventInput | None = None
    event_id: str | None = None

    @model_validator(mode="after")
    def _one_event(self) -> RuleTestRequest:
        if (self.event is None) == (self.event_id is None):
            raise ValueError("send exactly one of `event` or `event_id`")
        return self


class StepPreviewOut(Model):
    id: str
    type: str
    would_run: bool
    rendered: Any = Field(None, description="the step's input as it would be sent "
                                            "(secrets as placeholders)")
    error: str | None = None
    skipped_reason: str | None = None
    case: Any = Field(None, description="branch: the case that would run (its name, else "
                                        "its index; 'else'; null: none)")
    steps: list[StepPreviewOut] | None = Field(None, description="branch: the chosen "
                                                                 "case's steps")
    items: list[list[StepPreviewOut]] | None = Field(None, description="foreach: each "
                                                                       "item's steps")


class DryRunOut(Model):
    rule: str
    matched: bool
    reason: str | None = Field(description="why the rule did not match (the first failing "
                                           "condition and the value it saw)")
    trace: dict[str, Any]
    steps: list[StepPreviewOut]


class BacktestRequest(Model):
    rule: RuleDoc
    limit: int = Field(50, ge=1, le=1000, description="newest stored events to evaluate")
    source: str | None = Field(None, description="events of this source (default: the rule's)")


class BacktestRow(Model):
    event_id: str
    received_at: datetime
    matched: bool
    reason: str | None
    trace: dict[str, Any]


class BacktestOut(Model):
    items: list[BacktestRow]
    matched: int
    total: int


# -- secrets ---------------------------------------------------------------------------
class SecretOut(Model):
    """A stored secret's name; values are write-only."""

    name: str
    created_at: datetime
    updated_at: datetime


class SecretList(PageOut):
    items: list[SecretOut]


class SecretValue(Model):
    value: str


# -- API tokens ------------------------------------------------------------------------
class TokenOut(Model):
    """A token as listed: never the token, only its first characters."""

    name: str
    prefix: str = Field(description="the token's first characters, to tell tokens apart")
    created_at: datetime
    last_used_at: datetime | None


class TokenList(PageOut):
    items: list[TokenOut]


class TokenCreate(Model):
    name: str = Field(min_length=1, max_length=128)


class TokenCreated(Model):
    name: str
    token: str = Field(description="the bearer token, answered this once only")


# -- events and executions -------------------------------------------------------------


# -- destinations ----------------------------------------------------------------------
class DestinationOut(Record):
    destination: str = Field(description="scheme://host:port, or a configured host name")
    config: dict[str, Any] | None = Field(description="its destinations: entry, if any")
    state: Literal["ok", "failing", "paused", "probing", "slowed"] | None
    since: float | None = Field(description="paused since (epoch seconds)")
    resumes_at: float | None = Field(description="when the pause or hold ends")
    failures: int = Field(description="consecutive transient failures")
    last_error: str | None


class DestinationList(Model):
    items: list[DestinationOut]
    total: int


class DestinationResume(Model):
    destination: str = Field(min_length=1, max_length=300,
                             description="as listed, e.g. https://api.example.com:443")
