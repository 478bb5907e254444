"""The matcher: compiled rules, an equality index, and ``RuleSet.match(doc, source)``.

For one source, the considered rules are the enabled ones whose ``source`` is that slug or
``"*"``, ordered by priority (highest first) then name. ``match`` answers one
``MatchResult`` per considered rule, so every decision can be stored and explained.
A matched rule with ``stop: true`` ends evaluation: every rule after it in that order
(lower priority, or equal priority and a later name) gets ``matched=False`` and the reason
"not evaluated: rule 'x' matched with stop: true".

The equality index is ``rules.index``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rules.compiled import CompiledRule, compile_rule
from rules.conditions import (
    Trace,
)
from rules.index import SourceIndex
from rules.schema import RuleSpec


@dataclass(frozen=True)
class MatchResult:
    """Whether ``rule`` matched the event, why not (``reason``), and the condition trace."""

    rule: CompiledRule
    matched: bool
    reason: str | None
    trace: Trace


def _passes(rule: CompiledRule, doc: dict[str, Any]) -> bool:
    """The fast boolean check; True on an error, so ``_evaluate`` records it."""
    if rule.condition is None:
        return True
    try:
        return rule.condition.test(doc)
    except Exception:
        return True


def _evaluate(rule: CompiledRule, doc: dict[str, Any]) -> MatchResult:
    if rule.condition is None:
        return MatchResult(rule, True, None, {"always": True, "result": True})
    try:
        outcome = rule.condition.evaluate(doc)
    except Exception as exc:  # one broken rule must not hide the others' results
        reason = f"error while evaluating: {type(exc).__name__}: {exc}"
        return MatchResult(rule, False, reason, {"error": reason, "result": False})
    return MatchResult(rule, outcome.matched, outcome.reason, outcome.trace)


class RuleSet:
    """An immutable, versioned set of compiled rules that matches event documents."""

    def __init__(self, rules: Iterable[CompiledRule | RuleSpec], version: int | str = 0):
        self.version = version
        self.rules: list[CompiledRule] = [
            r if isinstance(r, CompiledRule) else compile_rule(r) for r in rules
        ]
        self._groups: dict[str, SourceIndex] = {}

    def _group(self, source: str) -> SourceIndex:
        group = self._groups.get(source)
        if group is None:
            considered = [r for r in self.rules if r.enabled and r.source in (source, "*")]
            group = self._groups[source] = SourceIndex(considered)
        return group

    def considered(self, source: str) -> int:
        """How many enabled rules apply to ``source``."""
        return len(self._group(source).rules)

    def match(self, doc: dict[str, Any], source: str, *,
              explain_excluded: bool = True) -> list[MatchResult]:
        """One result per considered rule, in evaluation order (see the module docstring).

        With ``explain_excluded=False`` only matching rules (and rules whose evaluation
        raised) are in the results: the index rules most rules out unread, candidates are
        tested without building explanations, and rules after a ``stop`` are not looked
        at. Matching then costs the candidates' boolean tests, whatever the rule count."""
        group = self._group(source)
        if not explain_excluded:
            return self._match_fast(group, doc, group.lean_candidates(doc))
        candidates, seen_by_path = group.candidates(doc)
        results: list[MatchResult] = []
        stopped_by: str | None = None
        for pos, rule in enumerate(group.rules):
            if stopped_by is not None:
                reason = f"not evaluated: rule '{stopped_by}' matched with stop: true"
                results.append(MatchResult(rule, False, reason, {"skipped": True}))
                continue
            entry = group.entries.get(pos)
            if entry is not None and pos not in candidates:
                reason, trace = entry.excluded(seen_by_path[entry.predicate.path.expr])
                results.append(MatchResult(rule, False, reason, trace))
                continue
            result = _evaluate(rule, doc)
            results.append(result)
            if result.matched and rule.stop:
                stopped_by = rule.name
        return results

    @staticmethod
    def _match_fast(group: SourceIndex, doc: dict[str, Any], candidates: set[int]
                    ) -> list[MatchResult]:
        """Only the index's candidates and the unindexable rules, in evaluation order,
        tested without explanations; a full result for each rule that matches."""
        results: list[MatchResult] = []
        for pos in sorted(candidates | group.lean_unindexed):
            rule = group.rules[pos]
            if not _passes(rule, doc):
                continue
            result = _evaluate(rule, doc)
            results.append(result)
            if result.matched and rule.stop:
                break
        return results
