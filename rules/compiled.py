"""Rules and steps compiled once, when saved: conditions, paths and templates ready to
run (``compile_rule``); the matcher (``rules.match``) and the chain runner use them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rules.conditions import CompiledCondition, compile_condition
from rules.schema import RuleSpec, Step
from rules.templating import CompiledValue, compile_value

_STEP_CONTROL_FIELDS = frozenset({"id", "type", "when", "on_error", "retry"})


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


def compile_step(spec: Step) -> CompiledStep:
    """Compile a step's condition and its fields' templates."""
    dumped = spec.model_dump(by_alias=True, exclude=set(_STEP_CONTROL_FIELDS))
    # a field left out (None) is absent, so actions can test "json" in config
    data = {k: v for k, v in dumped.items() if v is not None}
    assert spec.id is not None, "RuleSpec validation assigns every step an id"
    return CompiledStep(
        spec=spec,
        id=spec.id,
        type=spec.type,
        when=compile_condition(spec.when) if spec.when is not None else None,
        config=compile_value(data),
    )


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
