"""Condition trees compiled once and evaluated with an explanation.

``compile_condition(spec)`` turns a ``Condition`` model into a tree of nodes;
``evaluate(doc)`` answers an ``Outcome``: whether it matched, a one-line ``reason`` when it
did not (the first deciding condition, e.g. "failed at `$.body.amount gt 1000`: saw 10")
and a JSON-serialisable ``trace``::

    {"all": [child, ...], "result": bool}      children after the first failure are
    {"any": [child, ...], "result": bool}      {"skipped": true, "condition": label}
    {"not": child, "result": bool}
    {"path": "$.body.amount", "op": "gt", "value": 1000, "seen": [10], "result": false}

``seen`` holds at most ``MAX_ITEMS`` shortened values (``seen_count`` tells how many there
were). A predicate with ``value_path`` compares with every value that path selects
(``Operator.apply_many``: ``match`` counts on both sides; for ``in``/``nin`` the values are
the list); its trace has ``value`` (the one value, or the list of them, shortened),
``value_seen`` and, past ``MAX_ITEMS``, ``value_seen_count``, and a miss's reason shows
both sides. When that path selects nothing, positive ops are false and negative ones
(``ne nin ncontains nempty``) true.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from rules.condition_models import AllGroup, AnyGroup, Condition, NotGroup, Predicate
from rules.display import MAX_ITEMS, one_line, shorten
from rules.operators import OPERATORS, Operator
from rules.paths import CompiledPath, compile_path

Trace = dict[str, Any]
_Eval = tuple[bool, Trace, str | None]  # matched, trace, reason (only when not matched)


@dataclass(frozen=True)
class Outcome:
    """The result of evaluating a condition: ``reason`` is None exactly when matched."""

    matched: bool
    reason: str | None
    trace: Trace = field(default_factory=dict)


class CompiledCondition(ABC):
    """A compiled condition node; ``label`` is its one-line text (e.g. "$.a eq x")."""

    label: str

    def evaluate(self, doc: dict[str, Any]) -> Outcome:
        """Evaluate against an event document (see ``rules.match.build_event_document``)."""
        matched, trace, reason = self.run(doc)
        return Outcome(matched, None if matched else reason, trace)

    @abstractmethod
    def run(self, doc: dict[str, Any]) -> _Eval:
        """(matched, trace, reason-if-not-matched) for ``doc``."""

    @abstractmethod
    def test(self, doc: dict[str, Any]) -> bool:
        """Whether it matches, without building an explanation (the fast path)."""

    def evidence(self, trace: Trace) -> str:
        """Why this node *matched*, for explaining a failed ``not``."""
        return "the inner condition matched"


def _show_value(value: Any) -> str:
    if isinstance(value, str) and value and " " not in value:
        return value
    return json.dumps(shorten(value), ensure_ascii=False, default=str)


class CompiledPredicate(CompiledCondition):
    """One predicate: the values at ``path`` tested by ``op`` against the expected value."""

    def __init__(self, spec: Predicate):
        self.spec = spec
        self.path: CompiledPath = compile_path(spec.path)
        self.value_path: CompiledPath | None = (
            compile_path(spec.value_path) if spec.value_path else None
        )
        self.op: Operator = OPERATORS[spec.op]
        self.value = spec.value
        self.ignore_case = spec.ignore_case
        self.match = spec.match
        rhs = ""
        if spec.value_path:
            rhs = f" {spec.value_path}"
        elif self.op.needs_value:
            rhs = f" {_show_value(spec.value)}"
        options = (" (ignore_case)" if spec.ignore_case else "") + (
            " (match all)" if spec.match == "all" else ""
        )
        self.label = f"{spec.path} {spec.op}{rhs}{options}"

    def run(self, doc: dict[str, Any]) -> _Eval:
        seen = self.path.values(doc)
        if self.value_path is None:
            return self.judge(seen, self.value)
        found = self.value_path.values(doc)
        if not found:
            matched = self.op.negates is not None
            trace = self._trace(seen, None, matched)
            trace["value_path_missing"] = True
            missing = f"failed at `{self.label}`: nothing at {self.spec.value_path}"
            return matched, trace, None if matched else missing
        matched = self.op.apply_many(seen, found, ignore_case=self.ignore_case,
                                     match=self.match)
        trace = self._trace(seen, found[0] if len(found) == 1 else found, matched)
        trace["value_seen"] = [shorten(v) for v in found[:MAX_ITEMS]]
        if len(found) > MAX_ITEMS:
            trace["value_seen_count"] = len(found)
        reason = None if matched else f"failed at `{self.label}`: {self.evidence(trace)}"
        return matched, trace, reason

    def test(self, doc: dict[str, Any]) -> bool:
        seen = self.path.values(doc)
        if self.value_path is None:
            expected = self.value
        else:
            found = self.value_path.values(doc)
            if not found:
                return self.op.negates is not None
            return self.op.apply_many(seen, found, ignore_case=self.ignore_case,
                                      match=self.match)
        return self.op.apply(seen, expected, ignore_case=self.ignore_case, match=self.match)

    def judge(self, seen: list[Any], expected: Any) -> _Eval:
        """Decide for already-extracted ``seen`` values (the match index reuses this)."""
        matched = self.op.apply(seen, expected, ignore_case=self.ignore_case, match=self.match)
        trace = self._trace(seen, expected, matched)
        reason = None if matched else f"failed at `{self.label}`: {self.evidence(trace)}"
        return matched, trace, reason

    def _trace(self, seen: list[Any], expected: Any, matched: bool) -> Trace:
        trace: Trace = {"path": self.spec.path, "op": self.spec.op}
        if self.value_path is not None:
            trace["value_path"] = self.spec.value_path
        if self.op.needs_value:
            trace["value"] = shorten(expected)
        if self.ignore_case:
            trace["ignore_case"] = True
        if self.match == "all":
            trace["match"] = "all"
        trace["seen"] = [shorten(v) for v in seen[:MAX_ITEMS]]
        if len(seen) > MAX_ITEMS:
            trace["seen_count"] = len(seen)
        trace["result"] = matched
        return trace

    def evidence(self, trace: Trace) -> str:
        left = _listing(trace.get("seen") or [], trace.get("seen_count"))
        out = f"saw {left}" if left else "nothing at that path"
        if "value_seen" in trace:
            right = _listing(trace["value_seen"], trace.get("value_seen_count"))
            out += f"; {self.spec.value_path} selected {right}"
        return out


def _listing(values: list[Any], count: int | None) -> str:
    shown = ", ".join(one_line(v) for v in values)
    return shown + (f" (and {count - len(values)} more)" if count else "")


class CompiledAll(CompiledCondition):
    """Every child must match; stops at the first that does not."""

    def __init__(self, children: list[CompiledCondition]):
        self.children = children
        self.label = f"all({len(children)})"

    def test(self, doc: dict[str, Any]) -> bool:
        return all(child.test(doc) for child in self.children)

    def run(self, doc: dict[str, Any]) -> _Eval:
        traces: list[Trace] = []
        for i, child in enumerate(self.children):
            matched, trace, reason = child.run(doc)
            traces.append(trace)
            if not matched:
                traces.extend(_skipped(self.children[i + 1 :]))
                return False, {"all": traces, "result": False}, reason
        return True, {"all": traces, "result": True}, None


class CompiledAny(CompiledCondition):
    """At least one child must match; stops at the first that does."""

    def __init__(self, children: list[CompiledCondition]):
        self.children = children
        self.label = f"any({len(children)})"

    def test(self, doc: dict[str, Any]) -> bool:
        return any(child.test(doc) for child in self.children)

    def run(self, doc: dict[str, Any]) -> _Eval:
        traces: list[Trace] = []
        reasons: list[str] = []
        for i, child in enumerate(self.children):
            matched, trace, reason = child.run(doc)
            traces.append(trace)
            if matched:
                traces.extend(_skipped(self.children[i + 1 :]))
                return True, {"any": traces, "result": True}, None
            reasons.append(reason or f"failed at `{child.label}`")
        return (
            False,
            {"any": traces, "result": False},
            "no alternative matched: " + "; ".join(reasons),
        )


class CompiledNot(CompiledCondition):
    """Matches when the child does not."""

    def __init__(self, child: CompiledCondition):
        self.child = child
        self.label = f"not {child.label}"

    def test(self, doc: dict[str, Any]) -> bool:
        return not self.child.test(doc)

    def run(self, doc: dict[str, Any]) -> _Eval:
        matched, trace, _ = self.child.run(doc)
        if matched:
            reason = f"failed at `{self.label}`: {self.child.evidence(trace)}"
            return False, {"not": trace, "result": False}, reason
        return True, {"not": trace, "result": True}, None

    def evidence(self, trace: Trace) -> str:
        return "the inner condition did not match"


def _skipped(nodes: list[CompiledCondition]) -> list[Trace]:
    return [{"skipped": True, "condition": node.label} for node in nodes]


def compile_condition(spec: Condition) -> CompiledCondition:
    """Compile a condition model (paths and operators resolved once)."""
    if isinstance(spec, Predicate):
        return CompiledPredicate(spec)
    if isinstance(spec, AllGroup):
        return CompiledAll([compile_condition(c) for c in spec.all])
    if isinstance(spec, AnyGroup):
        return CompiledAny([compile_condition(c) for c in spec.any])
    if isinstance(spec, NotGroup):
        return CompiledNot(compile_condition(spec.not_))
    raise TypeError(f"not a condition model: {type(spec).__name__}")
