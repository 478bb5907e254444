"""Rules and steps compiled once, when saved: conditions, paths and templates ready to
run (``compile_rule``); the matcher (``rules.match``) and the chain runner use them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rules.conditions import CompiledCondition, compile_condition
from rules.paths import CompiledPath, compile_path
from rules.schema import RuleSpec, Step
from rules.step_models import BranchStep, ForeachStep
from rules.templating import CompiledValue, compile_value

_STEP_CONTROL_FIELDS = frozenset({"id", "type", "when", "on_error", "retry"})
_BLOCK_FIELDS = frozenset({"cases", "else", "steps", "items"})


@dataclass
class CompiledCase:
    """One case of a branch: its label (``name``, else its index), condition and steps."""

    label: str | int
    when: CompiledCondition
    steps: list[CompiledStep]


@dataclass
class CompiledStep:
    """A step ready to run: ``config`` holds its fields by their YAML names (``json``, ``from``).

    Control fields (id, type, when, on_error, retry) are not in ``config``; fields that are
    None (not given) are left out, fields with defaults (``method``, ``timeout_s``) are in.
    """

    spec: Step
    id: str
    type: str
    when: CompiledCondition | None
    config: CompiledValue
    # flow blocks: a branch's cases and else steps; a foreach's items and steps
    cases: list[CompiledCase] = field(default_factory=list)
    else_steps: list[CompiledStep] | None = None
    body: list[CompiledStep] = field(default_factory=list)
    items_path: CompiledPath | None = None
    items_template: CompiledValue | None = None

    @property
    def is_block(self) -> bool:
        return self.type in ("branch", "foreach")

    def walk(self) -> list[CompiledStep]:
        """This step and every step inside it, depth first."""
        out = [self]
        for case in self.cases:
            for sub in case.steps:
                out.extend(sub.walk())
        for sub in (self.else_steps or []) + self.body:
            out.extend(sub.walk())
        return out

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Render every field of the step (e.g. ``url``, ``json``, ``from``) for ``context``."""
        rendered: dict[str, Any] = self.config.render(context)
        return rendered


@dataclass
class CompiledRule:
    """A rule with its condition and steps compiled."""

    spec: RuleSpec
    name: str
    source: str
    priority: int
    stop: bool
    condition: CompiledCondition | None
    steps: list[CompiledStep] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.spec.enabled

    def all_steps(self) -> list[CompiledStep]:
        """Every step of the rule at every depth, depth first."""
        return [s for top in self.steps for s in top.walk()]


def compile_step(spec: Step) -> CompiledStep:
    """Compile a step's condition and its fields' templates."""
    dumped = spec.model_dump(by_alias=True, exclude=set(_STEP_CONTROL_FIELDS))
    # a field left out (None) is absent, so actions can test "json" in config
    data = {k: v for k, v in dumped.items() if v is not None}
    if isinstance(spec, BranchStep | ForeachStep):
        data = {k: v for k, v in data.items() if k not in _BLOCK_FIELDS}
    assert spec.id is not None, "RuleSpec validation assigns every step an id"
    step = CompiledStep(
        spec=spec,
        id=spec.id,
        type=spec.type,
        when=compile_condition(spec.when) if spec.when is not None else None,
        config=compile_value(data),
    )
    if isinstance(spec, BranchStep):
        step.cases = [CompiledCase(c.name if c.name is not None else i,
                                   compile_condition(c.when),
                                   [compile_step(sub) for sub in c.steps])
                      for i, c in enumerate(spec.cases)]
        if spec.else_:
            step.else_steps = [compile_step(sub) for sub in spec.else_]
    elif isinstance(spec, ForeachStep):
        step.body = [compile_step(sub) for sub in spec.steps]
        text = spec.items.strip()
        if text.startswith("$"):
            step.items_path = compile_path(text)
        else:
            step.items_template = compile_value(text, field="items")
    return step


def compile_rule(spec: RuleSpec) -> CompiledRule:
    """Compile a validated rule once (paths, operators, templates)."""
    return CompiledRule(
        spec=spec,
        name=spec.name,
        source=spec.source,
        priority=spec.priority,
        stop=spec.stop,
        condition=compile_condition(spec.when) if spec.when is not None else None,
        steps=[compile_step(step) for step in spec.actions],
    )
