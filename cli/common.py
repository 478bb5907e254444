"""What the commands share: exit codes, the Runtime, and how to run ``hookwise`` again.

Exit codes: 0 success, 1 the work failed, 2 bad usage or bad input (with a one-line
error naming the file, field and reason).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from rules.errors import RuleValidationError

DEFAULT_URL = "http://127.0.0.1:8000"
POINT_ELSEWHERE = ("point at another instance with --url URL or HOOKWISE_URL; a second shell "
                   "needs the same HOOKWISE_DATA_DIR as 'hookwise serve'")


def data_dir() -> Any:
    from engine.settings import DEFAULT_DATA_DIR

    return Path(os.environ.get("HOOKWISE_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


def instance_url(given: str | None = None) -> tuple[str, str]:
    """``(url, where it came from)`` of the Hookwise to talk to: ``--url``, else
    HOOKWISE_URL, else where ``hookwise serve`` recorded it listens in the data dir,
    else DEFAULT_URL."""
    from engine.outbound.instance import base_url

    if given:
        return given, "--url"
    if os.environ.get("HOOKWISE_URL"):
        return os.environ["HOOKWISE_URL"], "HOOKWISE_URL"
    found = base_url(data_dir())
    if found:
        return found, f"recorded by 'hookwise serve' in {data_dir()}"
    return DEFAULT_URL, f"the default: no 'hookwise serve' is recorded in {data_dir()}"


def warn_if_no_serve() -> None:
    """On stderr, when this data dir's embedded state has no running ``serve``: the
    usual cause of "no events" in a second shell."""
    from engine.outbound.instance import read_record

    if os.environ.get("HOOKWISE_DATABASE_URL") or read_record(data_dir()) is not None:
        return
    click.echo(f"note: no running 'hookwise serve' is recorded in {data_dir()}; this reads "
               "that data dir. A second shell needs the same HOOKWISE_DATA_DIR as "
               "'hookwise serve' (or set HOOKWISE_DATABASE_URL).", err=True)


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
