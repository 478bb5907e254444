"""Dry runs: what a rule would do with an event — match trace and rendered steps —
with no side effects (nothing sent, written or stored).

It decides and renders each step with the worker's own evaluator (``engine.run.steps``:
the same ``when``, the same template context, the same CPU limit) and stops short of the
action; a step's result that only the action could produce shows as a placeholder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.run import steps
from rules.compiled import compile_rule
from rules.document import build_event_document
from rules.errors import TemplateError
from rules.match import RuleSet
from rules.schema import RuleSpec


class Unknown(str):
    """What later steps see of an earlier step that a dry run did not really run:
    any attribute or item of it is another Unknown, rendered as ``<steps.x.json.id>``,
    so the preview shows where the real value would go."""

    def __new__(cls, path: str) -> Unknown:
        obj = super().__new__(cls, f"<{path}>")
        obj.path = path
        return obj

    path: str

    def __getattr__(self, name: str) -> Unknown:
        if name.startswith("_"):
            raise AttributeError(name)
        return Unknown(f"{self.path}.{name}")

    def __getitem__(self, key: Any) -> Unknown:  # type: ignore[override]
        return Unknown(f"{self.path}[{key!r}]" if not isinstance(key, str)
                       else f"{self.path}.{key}")


class PlaceholderSecrets(Mapping[str, str]):
    """``secrets.NAME`` renders as ``<secret NAME>``: values never leave a dry run."""

    def __getitem__(self, name: str) -> str:
        return f"<secret {name}>"

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass
class StepPreview:
    id: str
    type: str
    would_run: bool
    rendered: Any = None
    error: str | None = None
    skipped_reason: str | None = None


@dataclass
class DryRun:
    rule: str
    matched: bool
    reason: str | None
    trace: dict[str, Any]
    steps: list[StepPreview] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.matched and not any(s.error for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "matched": self.matched,
            "reason": self.reason,
            "trace": self.trace,
            "steps": [s.__dict__ for s in self.steps],
        }


def dry_run(
    spec: RuleSpec,
    *,
    body: Any,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, Any] | None = None,
    event: Mapping[str, Any] | None = None,
    source: str | None = None,
    state: Callable[[str], dict[str, Any]] | None = None,
) -> DryRun:
    compiled = compile_rule(spec)
    meta = {"id": "dry-run", "source": source or spec.source, "received_at": ""}
    meta.update(event or {})
    doc = build_event_document(body, dict(headers or {}), dict(query or {}), meta)
    event_source = str(meta["source"])
    results = RuleSet([compiled.spec]).match(doc, event_source)
    res = results[0] if results else None
    if res is None:
        return DryRun(spec.name, False, f"rule is for source {spec.source!r}; the event "
                                        f"came from {event_source!r}", {})
    report = DryRun(spec.name, res.matched, res.reason, res.trace)
    if not res.matched:
        return report
    outputs: dict[str, Any] = {}
    ctx = steps.template_context(doc, compiled, outputs, secrets=PlaceholderSecrets(),
                                 state=state or (lambda key: {}), now="")
    for step in compiled.steps:
        reason = steps.skip_reason(step, doc, outputs)
        if reason is not None:
            report.steps.append(StepPreview(step.id, step.type, False, skipped_reason=reason))
            continue
        try:
            rendered = steps.render(step, ctx)
            report.steps.append(StepPreview(step.id, step.type, True, rendered=rendered))
        except TemplateError as exc:
            report.steps.append(StepPreview(step.id, step.type, True, error=str(exc)))
            rendered = None
        if step.type == "reply" and rendered:
            outputs[step.id] = dict(rendered)
        else:
            outputs[step.id] = Unknown(f"steps.{step.id}")
    return report
