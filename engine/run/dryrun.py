"""Dry runs: what a rule would do with an event — match trace and rendered steps —
with no side effects (nothing sent, written or stored).

It decides and renders each step with the worker's own evaluator (``engine.run.steps``:
the same ``when``, the same template context, the same CPU limit) and stops short of the
action; a step's result that only the action could produce shows as a placeholder."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.run import flow, steps
from engine.store.secrets import SECRET_SINKS
from rules.compiled import CompiledRule, CompiledStep, compile_rule
from rules.document import build_event_document
from rules.errors import TemplateError
from rules.match import RuleSet
from rules.schema import RuleSpec
from rules.secret_refs import PreviewSecrets, display, holds_ref


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


@dataclass
class StepPreview:
    id: str
    type: str
    would_run: bool
    rendered: Any = None
    error: str | None = None
    skipped_reason: str | None = None
    # flow blocks: the case a branch would take and its steps; a foreach's items, each
    # with its steps
    case: Any = None
    steps: list[StepPreview] | None = None
    items: list[list[StepPreview]] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("steps", "items")}
        if self.steps is not None:
            out["steps"] = [s.as_dict() for s in self.steps]
        if self.items is not None:
            out["items"] = [[s.as_dict() for s in item] for item in self.items]
        return out

    @property
    def failed(self) -> bool:
        return bool(self.error) or any(s.failed for s in self.steps or []) or any(
            s.failed for item in self.items or [] for s in item)


@dataclass
class DryRun:
    rule: str
    matched: bool
    reason: str | None
    trace: dict[str, Any]
    steps: list[StepPreview] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.matched and not any(s.failed for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "matched": self.matched,
            "reason": self.reason,
            "trace": self.trace,
            "steps": [s.as_dict() for s in self.steps],
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
    report.steps = _preview_list(compiled, compiled.steps, doc, outputs, flow.TOP,
                                 state or (lambda key: {}))
    return report


def _preview_list(rule: CompiledRule, csteps: list[CompiledStep], doc: dict[str, Any],
                  outputs: dict[str, Any], scope: flow.Scope,
                  state: Callable[[str], dict[str, Any]]) -> list[StepPreview]:
    """Decide and render each step as the worker would (blocks: the case they would
    take, every item's steps), carrying nothing out."""
    out: list[StepPreview] = []
    for step in csteps:
        view = scope.document(doc)
        reason = steps.skip_reason(step, view, outputs)
        if reason is not None:
            out.append(StepPreview(step.id, step.type, False, skipped_reason=reason))
            continue
        ctx = steps.template_context(view, rule, outputs, secrets=PreviewSecrets(),
                                     state=state, now="")
        if step.is_block:
            out.append(_preview_block(rule, step, view, outputs, scope, ctx, state))
            continue
        rendered = None
        try:
            rendered = steps.render(step, ctx)
            if holds_ref(rendered) and step.type not in SECRET_SINKS:
                raise TemplateError(f"a {step.type} step cannot hold a secret (it would be "
                                    "stored where it can be read)")
            rendered = display(rendered)  # [secret:NAME]: values never enter a dry run
            out.append(StepPreview(step.id, step.type, True, rendered=rendered))
        except TemplateError as exc:
            out.append(StepPreview(step.id, step.type, True, error=str(exc)))
        if step.type in ("reply", "set") and rendered:
            outputs[step.id] = dict(rendered.get("values") or {}) if step.type == "set" \
                else dict(rendered)
        else:
            outputs[step.id] = Unknown(f"steps.{step.id}")
    return out


def _preview_block(rule: CompiledRule, step: CompiledStep, view: dict[str, Any],
                   outputs: dict[str, Any], scope: flow.Scope, ctx: dict[str, Any],
                   state: Callable[[str], dict[str, Any]]) -> StepPreview:
    preview = StepPreview(step.id, step.type, True)
    if step.type == "branch":
        try:
            label, chosen = flow.choose_case(step, view, outputs)
        except Exception as exc:  # a condition that cannot be evaluated
            preview.error = str(exc)
            return preview
        preview.case = label
        outputs[step.id] = {"case": label}
        preview.rendered = {"case": label}
        preview.steps = _preview_list(rule, chosen, view, outputs, scope, state)
        return preview
    try:
        items = flow.foreach_items(step, view, outputs, ctx)
    except flow.BlockError as exc:
        preview.error = str(exc)
        return preview
    preview.rendered = {"items": items, "count": len(items)}
    preview.items = []
    per_item: list[dict[str, Any]] = []
    before = dict(outputs)
    for i in range(len(items)):
        names = flow.loop_names(step, items, i)
        inner = flow.Scope(items=scope.items + (i,), names={**scope.names, **names})
        item_outputs = dict(before)
        preview.items.append(_preview_list(rule, step.body, view, item_outputs, inner, state))
        per_item.append({k: v for k, v in item_outputs.items()
                         if k not in before or item_outputs[k] is not before[k]})
        outputs.update(per_item[-1])  # as in a run: the last item's, for the steps after
    # as a run records it (engine.run.chain): each item's results by step id
    outputs[step.id] = {"items": per_item, "count": len(items)}
    return preview
