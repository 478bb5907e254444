"""Flow blocks in a running chain: where a nested step sits, and what a block decides.

A block (``branch``, ``foreach``) is a step row like any other; the steps inside it get
rows of their own when the block decides what runs (the chosen case's steps; every
item's steps), each with ``parent_position`` (the block's row) and ``item_index`` (the
foreach item). So each nested step is claimed, recorded and resumed exactly like a
top-level one: a crash at item 37 resumes at item 37's unfinished step, and a finished
step is never run again. The decision itself (which case; the list of items) is stored
as the block's ``rendered`` in the transaction that writes those rows, so a resumed
block never decides differently.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.store.models import StepRun, StepStatus
from rules.compiled import CompiledStep
from rules.errors import TemplateError

Key = tuple[int | None, int | None, str]  # (parent position, item index, step id)


@dataclass
class Scope:
    """Where a list of steps runs: at the top (``parent`` None), in a branch's case, or
    in one item of a foreach (``item``). ``names``: the item's name and ``loop`` for
    templates and conditions; ``items``: every enclosing foreach's item index."""

    parent: int | None = None
    item: int | None = None
    items: tuple[int, ...] = ()
    names: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None  # why a nested step failed (the block fails with it)

    @property
    def nested(self) -> bool:
        return self.parent is not None

    @property
    def key_suffix(self) -> str:
        """Appended to ``<execution>:<step>`` for the Idempotency-Key: the item indices."""
        return "".join(f":{i}" for i in self.items)

    def document(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return {**doc, **self.names} if self.names else dict(doc)

    def inside(self, block: StepRun, *, item: int | None = None,
               names: Mapping[str, Any] | None = None) -> Scope:
        return Scope(parent=block.position, item=item,
                     items=self.items + ((item,) if item is not None else ()),
                     names={**self.names, **(names or {})})


TOP = Scope()


class Tree:
    """An execution's step rows, found by where they sit."""

    def __init__(self, rows: Iterable[StepRun]):
        self.rows: dict[Key, StepRun] = {}
        self.next_position = 0
        self.lock = threading.Lock()  # a foreach's items may run in parallel
        for st in rows:
            self.add(st)

    def add(self, st: StepRun) -> None:
        self.rows[(st.parent_position, st.item_index, st.step_id)] = st
        self.next_position = max(self.next_position, st.position + 1)

    def get(self, scope: Scope, step_id: str) -> StepRun | None:
        return self.rows.get((scope.parent, scope.item, step_id))

    def children(self, block: StepRun) -> list[StepRun]:
        return sorted((st for st in self.rows.values()
                       if st.parent_position == block.position), key=lambda s: s.position)

    def new_rows(self, execution_id: str, scope: Scope,
                 steps: list[CompiledStep]) -> list[dict[str, Any]]:
        """Rows (pending) for ``steps`` in ``scope`` that do not exist yet, positions
        allocated after every row known."""
        rows: list[dict[str, Any]] = []
        with self.lock:
            return self._new_rows(execution_id, scope, steps, rows)

    def _new_rows(self, execution_id: str, scope: Scope, steps: list[CompiledStep],
                  rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for cstep in steps:
            if self.get(scope, cstep.id) is not None:
                continue
            rows.append({"execution_id": execution_id, "position": self.next_position,
                         "step_id": cstep.id, "type": cstep.type,
                         "status": StepStatus.pending, "attempts": 0,
                         "parent_position": scope.parent, "item_index": scope.item})
            self.next_position += 1
        return rows

    def adopt(self, rows: list[dict[str, Any]]) -> None:
        """Rows just written become known (as StepRun objects)."""
        with self.lock:
            for row in rows:
                self.add(StepRun.model_construct(**row))

    def results(self, block: StepRun, item: int | None = None) -> dict[str, Any]:
        """What the steps inside ``block`` (in ``item``) produced, by step id; a nested
        block's own steps included (a foreach's: its last item's)."""
        out: dict[str, Any] = {}
        with self.lock:
            kids = self.children(block)
        for st in kids:
            if item is not None and st.item_index != item:
                continue
            if st.status == StepStatus.succeeded:
                out[st.step_id] = st.output
            if st.type in ("branch", "foreach"):
                out.update(self.results(st))
        return out


def restore(tree: Tree, st: StepRun, outputs: dict[str, Any]) -> None:
    """A finished step met again on a resume: what it (and, for a block, the steps in
    it) produced is visible to the steps after it."""
    if st.status == StepStatus.succeeded:
        outputs[st.step_id] = st.output
    if st.type in ("branch", "foreach"):
        outputs.update(tree.results(st))
        if st.status == StepStatus.succeeded:
            outputs[st.step_id] = st.output


class BlockError(Exception):
    """A block cannot decide (its items are not a list, or too many)."""


def choose_case(cstep: CompiledStep, doc: Mapping[str, Any],
                outputs: Mapping[str, Any]) -> tuple[str | int | None, list[CompiledStep]]:
    """The branch's first case whose ``when`` holds: (its label, its steps); else
    ("else", the else steps); none: (None, [])."""
    view = {**doc, "steps": outputs}
    for case in cstep.cases:
        if case.when.evaluate(view).matched:
            return case.label, case.steps
    if cstep.else_steps:
        return "else", cstep.else_steps
    return None, []


def case_steps(cstep: CompiledStep, label: str | int | None) -> list[CompiledStep]:
    """The steps of the case a branch chose (by its stored label)."""
    if label is None:
        return []
    if label == "else":
        return cstep.else_steps or []
    for case in cstep.cases:
        if case.label == label:
            return case.steps
    raise BlockError(f"the case {label!r} this branch chose is no longer in the rule")


def foreach_items(cstep: CompiledStep, doc: Mapping[str, Any], outputs: Mapping[str, Any],
                  context: Mapping[str, Any]) -> list[Any]:
    """The items a foreach runs over, checked against ``max_items``."""
    spec: Any = cstep.spec
    if cstep.items_path is not None:
        found = cstep.items_path.values({**doc, "steps": outputs})
        expr = cstep.items_path.expr.rstrip()
        if len(found) == 1 and isinstance(found[0], list) and not expr.endswith("[*]"):
            items = list(found[0])  # the path names the list itself
        else:
            items = found
    else:
        assert cstep.items_template is not None
        try:
            value = cstep.items_template.render(context)
        except TemplateError as exc:
            raise BlockError(f"items: {exc}") from exc
        if isinstance(value, dict):
            value = list(value.items())
        if not isinstance(value, list | tuple):
            raise BlockError(f"items must yield a list, got {type(value).__name__}: "
                             f"{str(value)[:80]!r}")
        items = list(value)
    if len(items) > spec.max_items:
        raise BlockError(f"{len(items)} items, more than max_items ({spec.max_items})")
    return items


def loop_names(cstep: CompiledStep, items: list[Any], index: int) -> dict[str, Any]:
    """What templates and conditions see of one foreach item."""
    spec: Any = cstep.spec
    return {spec.as_: items[index],
            "loop": {"index": index, "number": index + 1, "first": index == 0,
                     "last": index == len(items) - 1, "length": len(items)}}


def descendant_ids(steps: list[CompiledStep]) -> list[str]:
    return [s.id for top in steps for s in top.walk()]
