"""Imports point one way: web → engine → rules (DESIGN "Three packages, one direction")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "rules": {"engine", "web", "flask", "sqlalchemy", "sqlmodel", "redis", "rq", "httpx",
              "alembic", "requests", "smtplib", "socket"},
    "engine": {"web", "flask", "werkzeug"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no python files under {package}/"
    offenders = {
        str(f.relative_to(ROOT)): sorted(imported_modules(f) & FORBIDDEN[package])
        for f in files
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"{package}/ imports what it must not: {offenders}"
