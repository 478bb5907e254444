"""The house's plan, checked: cli → web → engine → rules; inside engine, stages import
only the stages below them (engine/__init__.py draws the plan), and no import circle
exists anywhere — not even through imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rules", "engine", "web", "cli")

FORBIDDEN = {
    "rules": {"engine", "web", "cli", "flask", "sqlalchemy", "sqlmodel", "redis", "rq",
              "httpx", "alembic", "requests", "smtplib", "socket"},
    "engine": {"web", "cli", "flask", "werkzeug"},
    "web": {"cli"},
}

BASE = {"ids", "errors", "settings"}
# engine stage -> the engine stages it may import (besides itself)
STAGES: dict[str, set[str]] = {
    "ids": set(),
    "errors": set(),
    "settings": {"errors"},
    "store": BASE,
    "broker": BASE,
    "outbound": BASE,
    "runtime": BASE | {"store", "broker", "outbound"},
    "ingress": BASE | {"store", "broker", "runtime"},
    "actions": BASE | {"store", "broker", "outbound"},
    "run": BASE | {"store", "broker", "outbound", "actions", "runtime"},
    "work": BASE | {"store", "broker", "outbound", "actions", "runtime", "run"},
    # deprecated job paths of 0.1 (engine/inbox.py, engine/tasks.py): aliases of work's jobs
    "inbox": {"work"},
    "tasks": {"work"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
           if "migrations" not in p.parts}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path) -> set[str]:
    """Every module the file imports at run time (at any depth, inside functions too;
    not under ``if TYPE_CHECKING:``), resolved to a module of this project when it is
    one (``from engine.broker import inbox`` is ``engine.broker.inbox``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                found.add(full if full in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


GRAPH = {name: {m for m in imports_of(p) if m in MODULES and m != name}
         for name, p in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_no_import_circle() -> None:
    assert cycles(GRAPH) == []


def test_the_circle_finder_finds_circles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_one_way(package: str) -> None:
    offenders = {name: sorted({m.split(".")[0] for m in imports_of(p)} & FORBIDDEN[package])
                 for name, p in MODULES.items() if name.split(".")[0] == package}
    assert {k: v for k, v in offenders.items() if v} == {}


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "engine" and len(parts) > 1 else None


def test_engine_stages_import_only_the_stages_below() -> None:
    assert set(STAGES) == {stage(m) for m in MODULES if stage(m)}, "a stage is not planned"
    offenders = {}
    for name, deps in GRAPH.items():
        own = stage(name)
        if own is None:
            continue
        bad = sorted(d for d in deps if stage(d) and stage(d) != own
                     and stage(d) not in STAGES[own])
        if bad:
            offenders[name] = bad
    assert offenders == {}


def test_every_folder_says_what_it_holds() -> None:
    missing = [str(p.parent.relative_to(ROOT)) for name, p in MODULES.items()
               if p.name == "__init__.py" and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


def test_only_the_job_entry_points_find_the_runtime() -> None:
    """Everything below a job gets its Runtime passed in (DESIGN: explicit dependencies)."""
    def calls_current(path: Path) -> bool:
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                   and n.func.attr == "current" and isinstance(n.func.value, ast.Name)
                   and n.func.value.id == "runtime" for n in ast.walk(ast.parse(path.read_text())))

    callers = sorted(name for name, p in MODULES.items()
                     if name.startswith("engine") and calls_current(p))
    assert callers == ["engine.work.jobs"]
