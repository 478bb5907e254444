"""What the commands share: exit codes, the Runtime, and how to run ``hookwise`` again.

Exit codes: 0 success, 1 the work failed, 2 bad usage or bad input (with a one-line
error naming the file, field and reason).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import click

from rules.errors import RuleValidationError

DEFAULT_URL = "http://127.0.0.1:8000"


def hookwise_command(*args: str) -> list[str]:
    """The argv that runs ``hookwise ARGS...`` with this interpreter (the supervisor's
    children and the migration child), whether or not the console script is on PATH."""
    return [sys.executable, "-m", "cli", *args]


class InputError(click.ClickException):
    exit_code = 2


def runtime() -> Any:
    from engine.runtime import Runtime
    from engine.settings import Settings

    return Runtime(Settings.from_env())


def migrated_runtime() -> Any:
    from engine.store.db import upgrade

    rt = runtime()
    upgrade(rt.settings)
    return rt


def migrate_in_a_child() -> None:
    """``hookwise db upgrade`` in its own process: the web server's main process forks
    its workers, so it stays lean (no SQLAlchemy, Alembic or app modules: ~25 MB) and
    holds no database connection a fork could share."""
    done = subprocess.run(hookwise_command("db", "upgrade"),
                          stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def fail_validation(exc: RuleValidationError) -> None:
    for err in exc.errors:
        click.echo(f"error: {err}", err=True)
    raise SystemExit(2)


def mark_of(ok: Any) -> str:
    return click.style("PASS", fg="green") if ok else click.style("FAIL", fg="red")
