"""The rule format (README "Rules"): sources, rules and files, plus parse/load/dump.

Every model forbids unknown fields. Fields whose names are Python keywords or would shadow
pydantic methods carry an alias that is the name users write (``json``, ``from``, ``not``);
both spellings are accepted when building models in Python. Condition and step models live
in ``rules.condition_models`` / ``rules.step_models`` and are re-exported here.

``parse_rule_file``/``parse_rule``/``parse_source``/``load_rule_file`` raise
``RuleValidationError`` listing every problem (file, ``rule 'x'``/``source 'y'``, field
path relative to it, reason, value). ``dump_rule``/``dump_source`` produce plain JSON-able
dicts with the user-facing names and without defaults; they parse back to equal models.
"""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from rules.condition_models import AllGroup, AnyGroup, Condition, NotGroup, OpName, Predicate
from rules.connection_models import ConnectionSpec, dump_connection, parse_connection
from rules.errors import FieldError, RuleValidationError
from rules.model_base import (
    MAX_TOLERANCE_S,
    RULE_NAME_PATTERN,
    SLUG_PATTERN,
    JsonPath,
    Priority,
    SecretName,
    StrictModel,
)
from rules.step_models import (
    DbWriteStep,
    DelayStep,
    EmailStep,
    ReplyStep,
    RetrySpec,
    SignSpec,
    StateStep,
    Step,
    WebhookStep,
    child_lists,
)
from rules.validation import field_errors, load_yaml

__all__ = [
    "AllGroup", "AnyGroup", "Condition", "DbWriteStep", "DedupSpec", "DelayStep", "EmailStep",
    "NotGroup", "OpName", "Predicate", "ReplyStep", "RespondSpec", "RetrySpec", "RuleFile",
    "RuleSpec", "SignSpec", "SourceSpec", "StateStep", "Step", "VerifySpec", "WebhookStep",
    "dump_rule", "dump_source", "load_rule_file", "parse_rule", "parse_rule_file",
    "parse_source", "ConnectionSpec", "dump_connection", "parse_connection",
]  # fmt: skip


class VerifySpec(StrictModel):
    """How a source checks a webhook is genuine; ``secret`` is a stored secret's NAME.

    ``param`` is the query parameter a ``token`` may come in; ``username`` is for ``basic``;
    ``tolerance_s`` overrides the scheme's timestamp tolerance (``0``: the timestamp's age
    is not checked; README "Timestamps").
    """

    scheme: Literal[
        "none", "token", "basic", "hmac", "github", "stripe", "slack",
        "standard", "shopify", "twilio", "telegram",
    ] = "none"  # fmt: skip
    secret: SecretName | None = None
    header: str | None = None
    param: str | None = "token"
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    tolerance_s: int | None = Field(default=None, ge=0, le=MAX_TOLERANCE_S)
    username: str | None = None

    @model_validator(mode="after")
    def _secret_required(self) -> VerifySpec:
        if self.scheme != "none" and not self.secret:
            raise ValueError(f"scheme '{self.scheme}' needs `secret` (a stored secret's name)")
        if self.scheme == "hmac" and not self.header:
            raise ValueError("scheme 'hmac' needs `header` (the header carrying the signature)")
        return self


class DedupSpec(StrictModel):
    """Where a source's deduplication key comes from: exactly one header or JSONPath."""

    header: str | None = None
    path: JsonPath | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DedupSpec:
        if (self.header is None) == (self.path is None):
            raise ValueError("dedup needs exactly one of `header` or `path`")
        return self


class RespondSpec(StrictModel):
    """How ingest answers: at once (202), or with a matching rule's reply step."""

    mode: Literal["immediate", "reply"] = "immediate"
    timeout_ms: int = Field(default=2500, ge=1, le=30000)
    fallback: dict[str, Any] | None = None  # a reply: status, headers, json|text|body, …

    @field_validator("fallback")
    @classmethod
    def _fallback_is_a_reply(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        allowed = {"status", "headers", "json", "text", "body", "content_type"}
        if extra := sorted(set(value) - allowed):
            raise ValueError(f"unknown fallback field(s) {', '.join(extra)}; "
                             f"use {', '.join(sorted(allowed))}")
        status = value.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ValueError(f"fallback status must be an HTTP status 100-599, got {status!r}")
        if not isinstance(value.get("headers", {}), dict):
            raise ValueError("fallback headers must be a mapping")
        return value


class RateLimitSpec(StrictModel):
    """At most ``requests`` webhooks per ``per_s`` seconds; more are answered 429 with
    Retry-After (and not stored)."""

    requests: int = Field(ge=1, le=1_000_000)
    per_s: int = Field(default=1, ge=1, le=86_400)


class SourceSpec(StrictModel):
    """A webhook endpoint, ``POST /hooks/<slug>``."""

    slug: str = Field(pattern=SLUG_PATTERN)
    description: str = ""
    verify: VerifySpec = Field(default_factory=VerifySpec)
    dedup: DedupSpec | None = None
    respond: RespondSpec = Field(default_factory=RespondSpec)
    rate_limit: RateLimitSpec | None = None


class OutgoingRateSpec(StrictModel):
    """At most ``requests`` calls per ``per_s`` seconds to a destination, all workers
    together; steps over it wait for their turn (no attempt spent)."""

    requests: int = Field(ge=1, le=1_000_000)
    per_s: float = Field(default=1, gt=0, le=86_400)


class BreakerSpec(StrictModel):
    """Pause a destination after ``failures`` consecutive transient failures."""

    failures: int = Field(default=5, ge=1, le=1000)


DESTINATION_PATTERN = r"^([a-z][a-z0-9+.-]*://)?[A-Za-z0-9._\[\]:-]+$"


class DestinationSpec(StrictModel):
    """Limits for the outgoing calls to one destination: ``host`` is a host name (every
    scheme and port) or ``scheme://host[:port]`` (just that one)."""

    host: str = Field(max_length=300)
    concurrency: int | None = Field(default=None, ge=1, le=10_000)
    rate_limit: OutgoingRateSpec | None = None
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not re.match(DESTINATION_PATTERN, value):
            raise ValueError("expected a host name (api.example.com) or scheme://host[:port]")
        return value.lower()


class RuleSpec(StrictModel):
    """A rule: which source, when (a condition tree), what to do (a chain of steps).

    Steps without ``id`` get ``step1``, ``step2``… by position; ids must be unique.
    """

    name: str = Field(pattern=RULE_NAME_PATTERN)
    source: str
    description: str = ""
    enabled: bool = True
    priority: Priority = 0
    stop: bool = False
    when: Condition | None = None
    actions: list[Step] = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)

    @field_validator("source")
    @classmethod
    def _source_slug(cls, value: str) -> str:
        if value != "*" and not re.fullmatch(SLUG_PATTERN, value):
            raise ValueError("source must be '*' or a source slug (lowercase, digits, - and _)")
        return value

    @model_validator(mode="after")
    def _step_ids(self) -> RuleSpec:
        """Give every step an id (``step<n>`` at the top; ``<block>_<n>``,
        ``<branch>_<case>_<n>``, ``<branch>_else_<n>`` inside blocks) and refuse an id
        used twice anywhere in the rule, naming both places."""
        seen: dict[str, str] = {}
        _walk_ids(self.actions, "actions", None, seen)
        return self


def _walk_ids(steps: list[Any], where: str, prefix: str | None, seen: dict[str, str]) -> None:
    for position, step in enumerate(steps, start=1):
        here = f"{where}[{position - 1}]"
        if step.id is None:
            step.id = f"step{position}" if prefix is None else f"{prefix}_{position}"
        if step.id in seen:
            raise ValueError(f"duplicate step id '{step.id}': at {seen[step.id]} and at "
                             f"{here} (step ids must be unique across the rule, at every "
                             "depth)")
        seen[step.id] = here
        for sub_where, children in child_lists(step):
            if sub_where.startswith("cases["):
                index = int(sub_where[6:sub_where.index("]")])
                case = step.cases[index]
                sub_prefix = f"{step.id}_{case.name if case.name else index}"
            elif sub_where == "else":
                sub_prefix = f"{step.id}_else"
            else:
                sub_prefix = step.id
            _walk_ids(children, f"{here}.{sub_where}", sub_prefix, seen)


class RuleFile(StrictModel):
    """One YAML file or API document: ``sources:`` and ``rules:``, unique within the file."""

    sources: list[SourceSpec] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    destinations: list[DestinationSpec] = Field(default_factory=list)
    connections: list[ConnectionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RuleFile:
        for kind, names in (
            ("source slug", [s.slug for s in self.sources]),
            ("rule name", [r.name for r in self.rules]),
            ("destination host", [d.host for d in self.destinations]),
            ("connection name", [c.name for c in self.connections]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind}: {', '.join(dupes)}")
        return self


def _label(kind: str, key: str, data: Any, index: int | None) -> str:
    name = data.get(key) if isinstance(data, dict) else None
    if isinstance(name, str) and name:
        return f"{kind} '{name}'"
    return f"{kind}s[{index}]" if index is not None else kind


def _parse(model: type[BaseModel], data: Any, file: str | None, label: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RuleValidationError(field_errors(exc, file=file, rule=label)) from None


def parse_rule(data: Any, *, file: str | None = None, index: int | None = None) -> RuleSpec:
    """Validate one rule document; RuleValidationError lists every problem."""
    rule: RuleSpec = _parse(RuleSpec, data, file, _label("rule", "name", data, index))
    return rule


def parse_source(data: Any, *, file: str | None = None, index: int | None = None) -> SourceSpec:
    """Validate one source document; RuleValidationError lists every problem."""
    source: SourceSpec = _parse(SourceSpec, data, file, _label("source", "slug", data, index))
    return source


def parse_destination(data: Any, *, file: str | None = None,
                      index: int | None = None) -> DestinationSpec:
    """Validate one destination document; RuleValidationError lists every problem."""
    spec: DestinationSpec = _parse(DestinationSpec, data, file,
                                   _label("destination", "host", data, index))
    return spec


def parse_rule_file(data: Any, *, file: str | None = None) -> RuleFile:
    """Validate a whole file (``{sources: [...], rules: [...], destinations: [...]}``),
    collecting all errors."""
    if data is None:
        data = {}
    errors: list[FieldError] = []
    if not isinstance(data, dict):
        raise RuleValidationError(
            [FieldError("", "a rule file is a mapping with `sources:`, `rules:` and/or "
                        "`destinations:`",
                        file=file, value=type(data).__name__)]
        )  # fmt: skip
    for key in data:
        if key not in ("sources", "rules", "destinations", "connections"):
            errors.append(FieldError(key, f"unknown top-level key '{key}'", file=file))
    parsed: dict[str, list[Any]] = {"sources": [], "rules": [], "destinations": [],
                                    "connections": []}
    parsers = {"sources": parse_source, "rules": parse_rule, "destinations": parse_destination,
               "connections": parse_connection}
    for (key, parse), (attr, kind) in zip(
        parsers.items(), (("slug", "source"), ("name", "rule"), ("host", "destination"),
                          ("name", "connection")),
        strict=True,
    ):
        items = data.get(key) or []
        if not isinstance(items, list):
            errors.append(FieldError(key, f"`{key}` must be a list", file=file, value=items))
            continue
        for i, item in enumerate(items):
            try:
                parsed[key].append(parse(item, file=file, index=i))
            except RuleValidationError as exc:
                errors.extend(exc.errors)
        names = [x[attr] for x in items if isinstance(x, dict) and isinstance(x.get(attr), str)]
        for name in sorted({str(n) for n in names if names.count(n) > 1}):
            errors.append(FieldError(attr, f"duplicate {kind} {attr} in this file",
                                     file=file, rule=f"{kind} '{name}'", value=name))  # fmt: skip
    if errors:
        raise RuleValidationError(errors)
    return RuleFile(sources=parsed["sources"], rules=parsed["rules"],
                    destinations=parsed["destinations"], connections=parsed["connections"])


def load_rule_file(path: str | PathLike[str]) -> RuleFile:
    """Read and validate a YAML rule file; YAML errors name the file and line."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleValidationError([FieldError("", f"cannot read file: {exc}", file=file)]) from exc
    return parse_rule_file(load_yaml(text, file=file), file=file)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def dump_rule(rule: RuleSpec) -> dict[str, Any]:
    """A plain dict of ``rule`` (user-facing names, defaults left out); parses back equal."""
    dumped = _dump(rule)
    # steps read best as "id, type, ..." (models declare the shared fields first)
    dumped["actions"] = [
        {"id": a["id"], "type": a["type"]} | {k: v for k, v in a.items() if k not in ("id", "type")}
        for a in dumped["actions"]
    ]
    return dumped


def dump_source(source: SourceSpec) -> dict[str, Any]:
    """A plain dict of ``source`` (user-facing names, defaults left out); parses back equal."""
    return _dump(source)


def dump_destination(destination: DestinationSpec) -> dict[str, Any]:
    """A plain dict of ``destination`` (defaults left out); parses back equal."""
    return _dump(destination)
