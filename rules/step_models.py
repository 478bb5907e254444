"""Step models, one per ``type`` (README "Rules"); re-exported by ``rules.schema``.

Every string a step sends is a template (checked here); names the engine resolves itself
(``connection``, ``table``, ``key`` columns, secret names in ``sign``) are not.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator, model_validator

from rules.condition_models import Condition
from rules.model_base import (
    MAX_DELAY_S,
    MAX_RETRY_WAIT_S,
    MAX_TTL_S,
    SLUG_PATTERN,
    STEP_ID_PATTERN,
    TABLE_PATTERN,
    Column,
    SecretName,
    StrictModel,
    TemplateAny,
    TemplateStr,
    template_any,
)
from rules.step_checks import check_webhook_url
from rules.templating import is_template

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class RetrySpec(StrictModel):
    """How often a failing step is tried again; absent on a step = the engine's default."""

    max_attempts: int = Field(default=8, ge=1, le=50)
    backoff: Literal["exponential", "fixed"] = "exponential"
    initial_s: float = Field(default=5, gt=0, le=MAX_RETRY_WAIT_S)
    max_s: float = Field(default=36000, gt=0, le=MAX_RETRY_WAIT_S)

    @model_validator(mode="after")
    def _ordered(self) -> RetrySpec:
        if self.max_s < self.initial_s:
            raise ValueError("retry max_s must be at least initial_s")
        return self


class SignSpec(StrictModel):
    """Sign outgoing webhooks (Standard Webhooks headers) with a stored secret."""

    scheme: Literal["standard"] = "standard"
    secret: SecretName


class _StepBase(StrictModel):
    id: str | None = Field(default=None, pattern=STEP_ID_PATTERN)
    when: Condition | None = None
    on_error: Literal["stop", "continue"] = "stop"
    retry: RetrySpec | None = None


class WebhookStep(_StepBase):
    """Send an HTTP request; ``json`` (typed) or ``body`` (raw text), not both."""

    type: Literal["webhook"]
    url: TemplateStr  # with a connection: relative to its base URL (may be empty)
    connection: str | None = Field(default=None, pattern=SLUG_PATTERN)
    method: str = "POST"
    headers: dict[str, TemplateStr] = Field(default_factory=dict)
    query: dict[str, TemplateAny] = Field(default_factory=dict)
    json_: TemplateAny = Field(default=None, alias="json")
    body: TemplateStr | None = None
    timeout_s: float = Field(default=10, gt=0, le=120)
    sign: SignSpec | None = None

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in HTTP_METHODS:
            raise ValueError(f"method must be one of {', '.join(HTTP_METHODS)}")
        return value.upper()

    @model_validator(mode="after")
    def _one_payload(self) -> WebhookStep:
        if self.json_ is not None and self.body is not None:
            raise ValueError("a webhook step takes `json` or `body`, not both")
        if not self.url.strip() and self.connection is None:
            raise ValueError("a webhook step needs a url (or a connection: its base URL)")
        check_webhook_url(self.url, connection=self.connection)
        return self


Recipients = Annotated[str | list[str], AfterValidator(template_any)]
"""One address or a list of them (each a template)."""


class EmailStep(_StepBase):
    """Send an email; needs ``text`` and/or ``html``."""

    type: Literal["email"]
    to: Recipients
    cc: Recipients | None = None
    bcc: Recipients | None = None
    from_: TemplateStr | None = Field(default=None, alias="from")
    reply_to: TemplateStr | None = None
    subject: TemplateStr
    text: TemplateStr | None = None
    html: TemplateStr | None = None

    @model_validator(mode="after")
    def _content(self) -> EmailStep:
        if self.text is None and self.html is None:
            raise ValueError("an email step needs `text` or `html` (or both)")
        if self.to == [] or self.to == "":
            raise ValueError("an email step needs at least one `to` address")
        return self


class DbWriteStep(_StepBase):
    """Insert or upsert one row; ``key`` (upsert) columns must be among ``values``."""

    type: Literal["db_write"]
    connection: SecretName = "default"
    table: str = Field(pattern=TABLE_PATTERN)
    mode: Literal["insert", "upsert"] = "insert"
    key: list[Column] = Field(default_factory=list)
    values: dict[Column, TemplateAny] = Field(min_length=1)

    @model_validator(mode="after")
    def _key(self) -> DbWriteStep:
        if self.mode == "upsert" and not self.key:
            raise ValueError("mode 'upsert' needs `key` (the columns that identify a row)")
        missing = [k for k in self.key if k not in self.values]
        if missing:
            raise ValueError(f"key columns missing from `values`: {', '.join(missing)}")
        return self


class ReplyStep(_StepBase):
    """The HTTP answer to the webhook's sender; at most one of ``json``, ``text``, ``body``."""

    type: Literal["reply"]
    status: int = Field(default=200, ge=100, le=599)
    headers: dict[str, TemplateStr] = Field(default_factory=dict)
    json_: TemplateAny = Field(default=None, alias="json")
    text: TemplateStr | None = None
    body: TemplateStr | None = None
    content_type: TemplateStr | None = None

    @model_validator(mode="after")
    def _one_payload(self) -> ReplyStep:
        payloads = (("json", self.json_), ("text", self.text), ("body", self.body))
        given = [name for name, value in payloads if value is not None]
        if len(given) > 1:
            raise ValueError(f"a reply step takes one of json, text, body (got {', '.join(given)})")
        return self


class StateStep(_StepBase):
    """Merge ``set`` into the stored mapping under ``key`` (null deletes a field)."""

    type: Literal["state"]
    key: TemplateStr = Field(min_length=1)
    set: dict[str, TemplateAny] = Field(default_factory=dict)
    ttl_s: int | None = Field(default=None, gt=0, le=MAX_TTL_S)


class DelayStep(_StepBase):
    """Wait before the next step: a number of seconds, or a template that renders one."""

    type: Literal["delay"]
    seconds: Annotated[float, Field(ge=0, le=MAX_DELAY_S)] | TemplateStr

    @field_validator("seconds", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        # before the union is tried, so a bad number gets one error, not one per member
        if isinstance(value, str) and not is_template(value):
            try:
                value = float(value)
            except ValueError:
                raise ValueError("seconds must be a number or a template") from None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError("seconds must be a finite number")
            if value < 0:
                raise ValueError("seconds must not be negative")
            if value > MAX_DELAY_S:
                raise ValueError(f"seconds must be at most {MAX_DELAY_S} (a year)")
        return value


# -- flow blocks (steps that hold steps; SPEC "Flow blocks") ---------------------------------

MAX_FOREACH_ITEMS = 100_000
MAX_FOREACH_CONCURRENCY = 50
# names every template sees already: a foreach's `as` or a set's value may not hide them
RESERVED_NAMES = frozenset({"body", "headers", "query", "event", "steps", "secrets", "state",
                            "rule", "now", "loop"})
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class BranchCase(StrictModel):
    """One case of a ``branch``: when ``when`` holds (and no earlier case did), ``steps``
    run; ``name`` is what ``steps.<branch>.case`` says (else the case's index)."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=64)
    when: Condition
    steps: list[Step] = Field(min_length=1)


class BranchStep(_StepBase):
    """The first case whose ``when`` holds runs its steps; none: ``else`` (optional)."""

    type: Literal["branch"]
    cases: list[BranchCase] = Field(min_length=1)
    else_: list[Step] | None = Field(default=None, alias="else", min_length=1)

    @model_validator(mode="after")
    def _case_names(self) -> BranchStep:
        names = [c.name for c in self.cases if c.name is not None]
        if "else" in names:
            raise ValueError("a case may not be named 'else' (that names the else steps)")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate case name(s) {', '.join(dupes)} in this branch")
        return self


class ForeachStep(_StepBase):
    """Run ``steps`` once per item of ``items``: a JSONPath (``$.body…`` or ``$.steps…``)
    or a template that is one expression yielding a list. Templates see the item as
    ``as`` (default ``item``) and its 0-based index as ``loop.index``."""

    type: Literal["foreach"]
    items: str = Field(min_length=1)
    as_: str = Field(default="item", alias="as", pattern=NAME_PATTERN, max_length=64)
    max_items: int = Field(default=1000, ge=1, le=MAX_FOREACH_ITEMS)
    concurrency: int = Field(default=1, ge=1, le=MAX_FOREACH_CONCURRENCY)
    steps: list[Step] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def _items(cls, value: str) -> str:
        text = value.strip()
        if text.startswith("$"):
            return _jsonpath_check(text)
        if is_template(text):
            _template_check(text)
            if not (text.startswith("{{") and text.endswith("}}")) or text.count("{{") != 1:
                raise ValueError("items must be a JSONPath ($.body.list[*]) or a template "
                                 "that is exactly one {{ expression }} yielding a list")
            return text
        raise ValueError("items must be a JSONPath starting with $ (e.g. $.body.items[*]) or "
                         "a {{ expression }} yielding a list")

    @field_validator("as_")
    @classmethod
    def _as(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"`as: {value}` would hide the template name {value!r}; "
                             "choose another name")
        return value


class SetStep(_StepBase):
    """Named values computed once from templates (typed like ``json:`` values), read
    later as ``steps.<id>.<name>``."""

    type: Literal["set"]
    values: dict[Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)], TemplateAny] = \
        Field(min_length=1)


class EmitStep(_StepBase):
    """Raise a new event on a source of this instance (no signature: it is marked as
    emitted, with ``event.parent_id``); ``json`` (typed) or ``body`` (text)."""

    type: Literal["emit"]
    source: str = Field(pattern=SLUG_PATTERN)
    json_: TemplateAny = Field(default=None, alias="json")
    body: TemplateStr | None = None
    headers: dict[str, TemplateStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_payload(self) -> EmitStep:
        if self.json_ is not None and self.body is not None:
            raise ValueError("an emit step takes `json` or `body`, not both")
        return self


def _jsonpath_check(value: str) -> str:
    from rules.model_base import _jsonpath
    return _jsonpath(value)


def _template_check(value: str) -> str:
    from rules.model_base import _template_str
    return _template_str(value)


BLOCK_TYPES = frozenset({"branch", "foreach"})

STEP_TYPES: dict[str, type[_StepBase]] = {
    "webhook": WebhookStep,
    "email": EmailStep,
    "db_write": DbWriteStep,
    "reply": ReplyStep,
    "state": StateStep,
    "delay": DelayStep,
    "branch": BranchStep,
    "foreach": ForeachStep,
    "set": SetStep,
    "emit": EmitStep,
}


def _step_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return None if kind is None else f"({kind})"


Step = Annotated[
    Annotated[WebhookStep, Tag("(webhook)")]
    | Annotated[EmailStep, Tag("(email)")]
    | Annotated[DbWriteStep, Tag("(db_write)")]
    | Annotated[ReplyStep, Tag("(reply)")]
    | Annotated[StateStep, Tag("(state)")]
    | Annotated[DelayStep, Tag("(delay)")]
    | Annotated[BranchStep, Tag("(branch)")]
    | Annotated[ForeachStep, Tag("(foreach)")]
    | Annotated[SetStep, Tag("(set)")]
    | Annotated[EmitStep, Tag("(emit)")],
    Discriminator(
        _step_tag,
        custom_error_type="step_type_missing",
        custom_error_message="a step needs `type`: " + ", ".join(STEP_TYPES),
    ),
]


for _model in (BranchCase, BranchStep, ForeachStep):
    _model.model_rebuild()


def child_lists(step: Any) -> list[tuple[str, list[Any]]]:
    """A block's nested step lists with where they sit (``cases[0].steps``, ``else``,
    ``steps``); nothing for other steps."""
    if isinstance(step, BranchStep):
        out = [(f"cases[{i}].steps", c.steps) for i, c in enumerate(step.cases)]
        if step.else_:
            out.append(("else", step.else_))
        return out
    if isinstance(step, ForeachStep):
        return [("steps", step.steps)]
    return []
