"""The equality index of the rules considered for one source (``SourceIndex``).

Index: a rule whose condition is (or is an ``all`` with a direct child that is) an ``eq``
or ``in`` predicate on a simple path, without ``ignore_case`` or ``value_path``, is filed
under that path and the equality keys of its value(s). For an event each indexed path is
read once; rules whose keys do not occur are answered from that predicate alone, without
evaluating them. Keys mirror ``eq``'s coercion (a number and a numeric string share a
key), so the index only ever skips rules that could not match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules.compiled import CompiledRule
from rules.conditions import CompiledAll, CompiledCondition, CompiledPredicate, Trace
from rules.display import MAX_ITEMS, one_line, shorten
from rules.operators import as_number
from rules.paths import CompiledPath

Key = tuple[str, Any]


def _keys(value: Any) -> list[Key] | None:
    """Equality keys of a scalar: ``eq(a, b)`` implies they share a key. None: not a scalar."""
    if isinstance(value, bool):
        return [("b", value)]
    if isinstance(value, int | float):
        try:
            return [("n", float(value))]
        except OverflowError:
            return None
    if isinstance(value, str):
        number = as_number(value)
        if number is None:
            return [("s", value)]
        try:
            return [("s", value), ("n", float(number))]
        except OverflowError:
            return None
    return None


@dataclass
class Entry:
    """How an indexed rule is excluded without evaluation (the static parts, built once)."""

    predicate: CompiledPredicate
    wrap: list[Trace] | None  # the top-level all's children, with None where this predicate is
    head: Trace = field(default_factory=dict)  # trace keys before "seen"

    def __post_init__(self) -> None:
        pred = self.predicate
        self.head = {"path": pred.spec.path, "op": pred.spec.op, "value": shorten(pred.value)}
        if pred.match == "all":
            self.head["match"] = "all"

    def excluded(self, seen: Seen) -> tuple[str, Trace]:
        """(reason, trace) of this rule failing on ``seen``, as evaluation would give."""
        trace = self.head | seen.trace_tail
        reason = f"failed at `{self.predicate.label}`: {seen.evidence}"
        if self.wrap is None:
            return reason, trace
        return reason, {"all": [trace if c is None else c for c in self.wrap], "result": False}


class Seen:
    """What one indexed path selected in an event, rendered once for every excluded rule."""

    def __init__(self, values: list[Any]):
        self.values = values
        self._tail: Trace | None = None
        self._evidence: str | None = None

    @property
    def trace_tail(self) -> Trace:
        if self._tail is None:
            tail: Trace = {"seen": [shorten(v) for v in self.values[:MAX_ITEMS]]}
            if len(self.values) > MAX_ITEMS:
                tail["seen_count"] = len(self.values)
            tail["result"] = False
            self._tail = tail
        return self._tail

    @property
    def evidence(self) -> str:
        if self._evidence is None:
            trace = self.trace_tail
            if not trace["seen"]:
                self._evidence = "nothing at that path"
            else:
                shown = ", ".join(one_line(v) for v in trace["seen"])
                more = trace.get("seen_count")
                extra = f" (and {more - len(trace['seen'])} more)" if more else ""
                self._evidence = f"saw {shown}{extra}"
        return self._evidence


def _indexable(node: CompiledCondition) -> list[Key] | None:
    if not isinstance(node, CompiledPredicate) or not node.path.is_simple:
        return None
    if node.ignore_case or node.value_path is not None or node.spec.op not in ("eq", "in"):
        return None
    values = node.value if node.spec.op == "in" else [node.value]
    keys: list[Key] = []
    for value in values:
        found = _keys(value)
        if found is None:
            return None
        keys.extend(found)
    return keys


def _index_entry(condition: CompiledCondition | None) -> tuple[Entry, list[Key]] | None:
    if condition is None:
        return None
    keys = _indexable(condition)
    if keys is not None:
        assert isinstance(condition, CompiledPredicate)
        return Entry(condition, None), keys
    if isinstance(condition, CompiledAll):
        for i, child in enumerate(condition.children):
            keys = _indexable(child)
            if keys is not None:
                assert isinstance(child, CompiledPredicate)
                wrap: list[Any] = [
                    {"skipped": True, "condition": c.label} for c in condition.children
                ]
                wrap[i] = None
                return Entry(child, wrap), keys
    return None


def _all_indexable(
    condition: CompiledCondition | None,
) -> list[tuple[CompiledPredicate, list[Key]]]:
    """Every indexable equality of a rule (the condition itself, or the top-level ``all``'s
    children), one per path: the rule can only match if each of them finds its value."""
    if condition is None:
        return []
    nodes = condition.children if isinstance(condition, CompiledAll) else [condition]
    found: dict[str, tuple[CompiledPredicate, list[Key]]] = {}
    for node in nodes:
        keys = _indexable(node)
        if keys is not None and isinstance(node, CompiledPredicate):
            found.setdefault(node.path.expr, (node, keys))
    return list(found.values())


class SourceIndex:
    """The ordered rules considered for one source, and their index."""

    def __init__(self, rules: list[CompiledRule]):
        self.rules = sorted(rules, key=lambda r: (-r.priority, r.name))
        self.entries: dict[int, Entry] = {}
        self.paths: dict[str, tuple[CompiledPath, dict[Key, set[int]]]] = {}
        for pos, rule in enumerate(self.rules):
            found = _index_entry(rule.condition)
            if found is None:
                continue
            entry, keys = found
            self.entries[pos] = entry
            path = entry.predicate.path
            table = self.paths.setdefault(path.expr, (path, {}))[1]
            for key in keys:
                table.setdefault(key, set()).add(pos)
        # The lean index keys a rule on *every* equality path of its top-level all; rules
        # are grouped by that set of paths, and a group's candidates are the intersection
        # of what each path's value finds — smallest set first, in C — so the cost follows
        # the candidates, not the rule count.
        self.lean_path_objs: dict[str, CompiledPath] = {}
        groups: dict[tuple[str, ...], dict[str, dict[Key, set[int]]]] = {}
        indexed: set[int] = set()
        for pos, rule in enumerate(self.rules):
            preds = _all_indexable(rule.condition)
            if not preds:
                continue
            indexed.add(pos)
            tables = groups.setdefault(tuple(sorted(p.path.expr for p, _ in preds)), {})
            for pred, keys in preds:
                self.lean_path_objs.setdefault(pred.path.expr, pred.path)
                table = tables.setdefault(pred.path.expr, {})
                for key in keys:
                    table.setdefault(key, set()).add(pos)
        self.lean_groups = list(groups.items())
        self.lean_unindexed = frozenset(range(len(self.rules))) - indexed

    def lean_candidates(self, doc: dict[str, Any]) -> set[int]:
        """Rules whose every indexed equality finds its value in ``doc`` (each indexed
        path is read once)."""
        keys_at: dict[str, list[Key]] = {}
        for expr, path in self.lean_path_objs.items():
            found: list[Key] = []
            for value in path.values(doc):
                found.extend(_keys(value) or ())
            keys_at[expr] = found
        out: set[int] = set()
        for signature, tables in self.lean_groups:
            hits: list[set[int]] = []
            for expr in signature:
                table, keys = tables[expr], keys_at[expr]
                if len(keys) == 1:
                    hit = table.get(keys[0])
                else:
                    hit = set().union(*(table.get(k, ()) for k in keys)) if keys else None
                if not hit:
                    break
                hits.append(hit)
            else:
                hits.sort(key=len)
                out |= hits[0].intersection(*hits[1:]) if len(hits) > 1 else hits[0]
        return out

    def candidates(self, doc: dict[str, Any]) -> tuple[set[int], dict[str, Seen]]:
        """Positions of indexed rules that may match, and the values read per path."""
        found: set[int] = set()
        seen_by_path: dict[str, Seen] = {}
        for expr, (path, table) in self.paths.items():
            seen = path.values(doc)
            seen_by_path[expr] = Seen(seen)
            for value in seen:
                for key in _keys(value) or ():
                    found.update(table.get(key, ()))
        return found, seen_by_path
