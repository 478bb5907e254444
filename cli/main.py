"""The ``hookwise`` command line.

Exit codes: 0 success, 1 the work failed, 2 bad usage or bad input (with a one-line
error naming the file, field and reason).
"""

from __future__ import annotations

import json
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any

import click

from rules.errors import HookwiseError, RuleValidationError

DEFAULT_URL = "http://127.0.0.1:8000"


class InputError(click.ClickException):
    exit_code = 2


def _runtime() -> Any:
    from engine.runtime import Runtime
    from engine.settings import Settings

    return Runtime(Settings.from_env())


def _migrated_runtime() -> Any:
    from engine.store.db import upgrade

    rt = _runtime()
    upgrade(rt.settings)
    return rt


def _migrate_in_a_child() -> None:
    """``hookwise db upgrade`` in its own process: the web server's main process forks
    its workers, so it stays lean (no SQLAlchemy, Alembic or app modules: ~25 MB) and
    holds no database connection a fork could share."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "cli.main", "db", "upgrade"],
                          stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def _fail_validation(exc: RuleValidationError) -> None:
    for err in exc.errors:
        click.echo(f"error: {err}", err=True)
    raise SystemExit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Hookwise: webhooks in, rules matched, actions run."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="RQ worker processes")
@click.option("--web-workers", default=2, show_default=True, type=int)
@click.option("--one-process", is_flag=True,
              help="serve the web from the first worker's process: the smallest memory")
def serve(host: str, port: int, workers: int, web_workers: int, one_process: bool) -> None:
    """Web + workers (+ embedded Redis) in one command."""
    from cli.supervisor import serve as run

    raise SystemExit(run(host, port, workers, web_workers, one_process=one_process))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="server processes")
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--no-migrate", is_flag=True, help="skip 'db upgrade' at start")
@click.option("--access-log", is_flag=True)
@click.option("--server", type=click.Choice(["granian", "gunicorn"]), default="granian",
              show_default=True, help="the WSGI server (bench/run.py measures both)")
def web(host: str, port: int, workers: int, threads: int, no_migrate: bool,
        access_log: bool, server: str) -> None:
    """Web/ingest only."""
    from web.server import serve_web

    if not no_migrate:
        _migrate_in_a_child()
    serve_web(host, port, workers=workers, threads=threads, access_log=access_log,
              server=server)


@main.command()
@click.option("--burst", is_flag=True, help="exit when the queue is empty")
@click.option("--web", "web_at", metavar="HOST:PORT",
              help="also serve the web (ingest, UI, API) from this process: one process, "
                   "the smallest memory (threads; less throughput than 'hookwise web')")
@click.option("--threads", default=8, show_default=True, type=int, help="with --web")
def worker(burst: bool, web_at: str | None, threads: int) -> None:
    """One RQ worker."""
    from engine.work.worker import run_worker

    host, _, port = (web_at or "").rpartition(":")
    if web_at and (not host or not port.isdigit()):
        raise InputError(f"--web: expected HOST:PORT, got {web_at!r}")
    rt = _runtime()
    stop_web = None
    if web_at:
        from web.server import serve_web_in_thread

        stop_web = serve_web_in_thread(host, int(port), rt, threads=threads)
        click.echo(f"web: serving on http://{host}:{port} from this worker's process",
                   err=True)
    try:
        run_worker(rt, burst=burst, with_scheduler=not burst)
    finally:
        if stop_web is not None:
            stop_web()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Run the migrations up to the newest schema."""
    _migrated_runtime()
    click.echo("database is up to date")


@main.command()
@click.argument("paths", nargs=-1, required=True)
def apply(paths: tuple[str, ...]) -> None:
    """Upsert sources and rules from YAML files or folders."""
    from engine.store.rule_files import apply_paths

    rt = _migrated_runtime()
    try:
        changes = apply_paths(rt.catalog, paths)
    except RuleValidationError as exc:
        _fail_validation(exc)
    for c in changes:
        click.echo(f"{c.kind} {c.name}: {c.action}")
    n = sum(c.action != "unchanged" for c in changes)
    click.echo(f"{n} changed, {len(changes) - n} unchanged")


@main.command()
@click.argument("directory", required=False)
def export(directory: str | None) -> None:
    """Write every source and rule back as YAML (to DIR, or stdout)."""
    from engine.store.rule_files import export as do_export

    rt = _migrated_runtime()
    out = do_export(rt.catalog, directory)
    if isinstance(out, str):
        click.echo(out, nl=False)
    else:
        for p in out:
            click.echo(f"wrote {p}")


def _read_payload(path: str) -> tuple[Any, str]:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read payload: {exc.strerror}") from None
    from engine.ingress.parsing import BodyError, parse_body

    ctype = "application/json" if p.suffix == ".json" else ""
    try:
        return parse_body(ctype, raw), ctype
    except BodyError as exc:
        raise InputError(f"{path}: {exc}") from None


def _headers(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        k, sep, v = pair.partition(":")
        if not sep or not k.strip():
            raise InputError(f"--header {pair!r}: expected NAME:VALUE")
        out[k.strip().lower()] = v.strip()
    return out


@main.command("test")
@click.argument("rule_file")
@click.option("--payload", required=True, help="JSON (or text) file with the webhook body")
@click.option("--header", "headers", multiple=True, help="K:V, repeatable")
@click.option("--rule", "rule_name", help="which rule of the file (default: all)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def test_cmd(rule_file: str, payload: str, headers: tuple[str, ...], rule_name: str | None,
             as_json: bool) -> None:
    """Dry run: match trace and rendered steps, no side effects.

    Exits 0 when every rule tested matched and all its steps rendered, 1 otherwise.
    """
    from engine.run.dryrun import dry_run
    from rules.schema import load_rule_file

    try:
        doc = load_rule_file(rule_file)
    except RuleValidationError as exc:
        _fail_validation(exc)
    rules = [r for r in doc.rules if rule_name in (None, r.name)]
    if not rules:
        raise InputError(f"{rule_file}: no rule {'named ' + repr(rule_name) if rule_name else ''}"
                         " to test")
    body, _ = _read_payload(payload)
    hdrs = _headers(headers)
    reports = [dry_run(r, body=body, headers=hdrs) for r in rules]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2, default=str))
    else:
        for rep in reports:
            _print_report(rep)
    raise SystemExit(0 if all(r.ok for r in reports) else 1)


def _print_trace(node: dict[str, Any], depth: int = 0) -> None:
    pad = "  " * depth
    for group in ("all", "any"):
        if group in node:
            mark = _mark(node.get("result"))
            click.echo(f"{pad}{mark} {group}:")
            for child in node[group]:
                _print_trace(child, depth + 1)
            return
    if "not" in node:
        click.echo(f"{pad}{_mark(node.get('result'))} not:")
        _print_trace(node["not"], depth + 1)
        return
    if node.get("skipped"):
        click.echo(f"{pad}  -  {node.get('condition')} (not evaluated: already decided)")
        return
    value = "" if node.get("value") is None else f" {json.dumps(node.get('value'))}"
    seen = json.dumps(node.get("seen"), default=str)
    click.echo(f"{pad}{_mark(node.get('result'))} {node.get('path')} {node.get('op')}{value}"
               f"   saw {seen}")


def _mark(ok: Any) -> str:
    return click.style("PASS", fg="green") if ok else click.style("FAIL", fg="red")


def _print_report(rep: Any) -> None:
    verdict = click.style("MATCHED", fg="green") if rep.matched else click.style(
        "NOT MATCHED", fg="red")
    click.echo(f"rule {rep.rule}: {verdict}")
    if rep.trace:
        _print_trace(rep.trace, 1)
    elif rep.matched:
        click.echo("  (no conditions: matches every event of its source)")
    if rep.reason:
        click.echo(f"  reason: {rep.reason}")
    for st in rep.steps:
        if not st.would_run:
            click.echo(f"  step {st.id} ({st.type}): skipped — {st.skipped_reason}")
        elif st.error:
            click.echo(f"  step {st.id} ({st.type}): " + click.style("ERROR", fg="red")
                       + f" {st.error}")
        else:
            rendered = json.dumps(st.rendered, indent=2, default=str).replace("\n", "\n    ")
            click.echo(f"  step {st.id} ({st.type}) would send:\n    {rendered}")
    click.echo("  (dry run: nothing was sent, written or stored)")


@main.command()
@click.argument("source")
@click.argument("file")
@click.option("--url", default=lambda: os.environ.get("HOOKWISE_URL", DEFAULT_URL),
              show_default=DEFAULT_URL, help="base URL of a running Hookwise")
@click.option("--header", "headers", multiple=True, help="K:V, repeatable")
def send(source: str, file: str, url: str, headers: tuple[str, ...]) -> None:
    """POST FILE to a running instance's /hooks/SOURCE."""
    import httpx

    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None
    ctype = mimetypes.guess_type(file)[0] or "application/octet-stream"
    hdrs = {"Content-Type": ctype, **_headers(headers)}
    try:
        resp = httpx.post(f"{url.rstrip('/')}/hooks/{source}", content=raw, headers=hdrs,
                          timeout=30)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    click.echo(f"{resp.status_code} {resp.text}")
    raise SystemExit(0 if resp.is_success else 1)


@main.group()
def secrets() -> None:
    """Stored secrets (encrypted at rest; values are write-only)."""


@secrets.command("set")
@click.argument("name")
@click.option("--value", help="the value (default: read from stdin)")
def secrets_set(name: str, value: str | None) -> None:
    if value is None:
        value = sys.stdin.read().rstrip("\n")
    if not value:
        raise InputError(f"secret {name}: empty value")
    rt = _migrated_runtime()
    try:
        rt.secrets.set(name, value)
    except HookwiseError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"secret {name} set")


@secrets.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every secret with HOOKWISE_SECRET_KEY (old keys in
    HOOKWISE_SECRET_KEY_PREVIOUS, comma-separated, still decrypt until then)."""
    try:
        n = _migrated_runtime().secrets.rotate()
    except HookwiseError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{n} secret(s) re-encrypted with the current key")


@secrets.command("list")
def secrets_list() -> None:
    for name in _migrated_runtime().secrets.names():
        click.echo(name)


@secrets.command("delete")
@click.argument("name")
def secrets_delete(name: str) -> None:
    if not _migrated_runtime().secrets.delete(name):
        raise click.ClickException(f"no secret named {name}")
    click.echo(f"secret {name} deleted")


@main.command()
@click.argument("event_id", required=False)
@click.option("--failed", is_flag=True, help="retry every failed execution (from its failed step)")
@click.option("--since", help="with --failed: only executions created at or after this ISO time")
@click.option("--rules", "rules", type=click.Choice(["now", "then"]), default="now",
              show_default=True,
              help="now: match again with today's rules; then: re-run the rule versions "
                   "that matched last time")
def replay(event_id: str | None, failed: bool, since: str | None, rules: str) -> None:
    """Run EVENT_ID again (a new round), or retry failed executions in bulk."""
    from datetime import datetime

    from engine.run.replay import Conflict, NotFound, replay_event, retry_execution
    from engine.store.queries import list_executions

    if bool(event_id) == failed:
        raise InputError("give an EVENT_ID or --failed (one of them)")
    rt = _migrated_runtime()
    if event_id:
        try:
            new_round = replay_event(rt, event_id, rules=rules)
        except (NotFound, Conflict) as exc:
            raise click.ClickException(str(exc)) from None
        what = "matching with today's rules" if rules == "now" else "the rule versions it ran"
        click.echo(f"event {event_id} queued again: round {new_round}, {what}")
        return
    cutoff = None
    if since:
        try:
            cutoff = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"--since {since!r}: not an ISO 8601 time") from None
    ids: list[str] = []
    offset = 0
    while True:
        page = list_executions(rt.db, status="failed", limit=200, offset=offset)
        for ex in page.items:
            created = datetime.fromisoformat(ex["created_at"])
            if cutoff is None or created >= (cutoff if cutoff.tzinfo else
                                             cutoff.replace(tzinfo=created.tzinfo)):
                ids.append(ex["id"])
        if page.next_offset is None:
            break
        offset = page.next_offset
    with click.progressbar(ids, label=f"retrying {len(ids)} failed execution(s)") as bar:
        for ex_id in bar:
            retry_execution(rt, ex_id)
    click.echo(f"{len(ids)} execution(s) queued to resume at their failed step")


@main.group()
def user() -> None:
    """Web UI users."""


@user.command("create")
@click.argument("email")
@click.option("--password", help="(default: prompt twice)")
def user_create(email: str, password: str | None) -> None:
    from engine.store.accounts import AccountError

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        _migrated_runtime().accounts.create_user(email, password)
    except AccountError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"user {email.strip().lower()} created")


@main.group()
def token() -> None:
    """API bearer tokens."""


@token.command("create")
@click.argument("name")
def token_create(name: str) -> None:
    """Print a new API token once (only its hash is stored)."""
    from engine.store.accounts import AccountError

    try:
        click.echo(_migrated_runtime().accounts.create_token(name))
    except AccountError as exc:
        raise InputError(str(exc)) from None


@main.group()
def events() -> None:
    """Stored events, their match traces and executions."""


@events.command("list")
@click.option("--source")
@click.option("--limit", default=20, show_default=True)
def events_list(source: str | None, limit: int) -> None:
    from engine.store.queries import list_events

    for e in list_events(_migrated_runtime().db, source=source, limit=limit).items:
        click.echo(f"{e['id']}  {e['received_at']}  {e['source']:<16} {e['status']:<10} "
                   f"matched={e['matched_count']}")


@events.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True)
def events_show(event_id: str, as_json: bool) -> None:
    from engine.store.queries import get_event

    info = get_event(_migrated_runtime().db, event_id)
    if info is None:
        raise click.ClickException(f"no event {event_id}")
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    e = info["event"]
    click.echo(f"event {e['id']} from {e['source']} at {e['received_at']}: {e['status']}")
    for t in info["matches"]:
        mark = _mark(t["matched"])
        click.echo(f"  {mark} rule {t['rule_name']} v{t['rule_version']}"
                   + (f" — {t['reason']}" if t["reason"] else ""))
    for ex in info["executions"]:
        click.echo(f"  execution {ex['id']} ({ex['rule_name']}): {ex['status']}"
                   + (f" — {ex['error']}" if ex["error"] else ""))
        for st in ex["steps"]:
            err = f" — {st['error']}" if st["error"] else ""
            click.echo(f"    {st['position']}. {st['step_id']} ({st['type']}): {st['status']}"
                       f" attempts={st['attempts']} {st['duration_ms'] or 0:.0f} ms{err}")


if __name__ == "__main__":
    main()
