"""Commands that look after an instance: ``secrets``, ``replay``, ``user``, ``token``,
``events``."""

from __future__ import annotations

import json
import sys

import click

from cli.common import (
    InputError,
    mark_of,
    migrated_runtime,
    warn_if_no_serve,
)
from rules.errors import HookwiseError


@click.group()
def secrets() -> None:
    """Stored secrets (encrypted at rest; values are write-only)."""


@secrets.command("set")
@click.argument("name")
@click.option("--value", help="the value (default: read from stdin)")
def secrets_set(name: str, value: str | None) -> None:
    if value is None:
        value = sys.stdin.read().rstrip("\n")
    rt = migrated_runtime()
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
        n = migrated_runtime().secrets.rotate()
    except HookwiseError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{n} secret(s) re-encrypted with the current key")


@secrets.command("list")
def secrets_list() -> None:
    for name in migrated_runtime().secrets.names():
        click.echo(name)


@secrets.command("delete")
@click.argument("name")
def secrets_delete(name: str) -> None:
    if not migrated_runtime().secrets.delete(name):
        raise click.ClickException(f"no secret named {name}")
    click.echo(f"secret {name} deleted")


@click.command()
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

    from engine.errors import ConfigError, Conflict, NotFound
    from engine.run.replay import replay_event, retry_execution
    from engine.store.queries import list_executions

    if bool(event_id) == failed:
        raise InputError("give an EVENT_ID or --failed (one of them)")
    warn_if_no_serve()
    rt = migrated_runtime()
    if event_id:
        try:
            new_round = replay_event(rt, event_id, rules=rules)
        except (NotFound, Conflict, ConfigError) as exc:
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


@click.group()
def user() -> None:
    """Web UI users."""


@user.command("create")
@click.argument("email")
@click.option("--password", help="(default: prompt twice)")
def user_create(email: str, password: str | None) -> None:
    from engine.errors import AccountError

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        migrated_runtime().accounts.create_user(email, password)
    except AccountError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"user {email.strip().lower()} created")


@user.command("password")
@click.argument("email")
@click.option("--password", help="the new password (default: prompt twice)")
def user_password(email: str, password: str | None) -> None:
    """Set a user's password; the user's open sessions end."""
    from engine.errors import AccountError

    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        migrated_runtime().accounts.set_password(email, password)
    except AccountError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"password of {email.strip().lower()} changed; its open sessions have ended")


@click.group()
def token() -> None:
    """API bearer tokens."""


@token.command("create")
@click.argument("name")
def token_create(name: str) -> None:
    """Print a new API token once (only its hash is stored)."""
    from engine.errors import AccountError

    try:
        click.echo(migrated_runtime().accounts.create_token(name))
    except AccountError as exc:
        raise InputError(str(exc)) from None


@token.command("list")
def token_list() -> None:
    """Every token: name, first characters, created, last used (never the token)."""
    for row in migrated_runtime().accounts.list_tokens():
        used = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "never"
        click.echo(f"{row.name}\t{row.prefix}…\tcreated {row.created_at:%Y-%m-%d %H:%M}"
                   f"\tlast used {used}")


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke the token called NAME: API calls with it get 401 from now on."""
    if not migrated_runtime().accounts.delete_token(name):
        raise InputError(f"no token named {name!r} (hookwise token list shows them)")
    click.echo(f"token {name} revoked")


@click.group(invoke_without_command=True)
@click.pass_context
def destinations(ctx: click.Context) -> None:
    """Where outgoing calls go: limits and state (paused, probing, slowed, failing)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(destinations_list)


@destinations.command("list")
def destinations_list() -> None:
    """Configured destinations and every one that fails or is held."""
    from engine.run.admission import overview

    rows = overview(migrated_runtime())
    if not rows:
        click.echo("no destinations configured, none failing")
    for d in rows:
        state = d["state"] or "unknown (Redis unreachable)"
        line = f"{d['destination']}\t{state}"
        if d.get("failures"):
            line += f"\t{d['failures']} failures"
        if d.get("resumes_at"):
            line += f"\tresumes {_clock(d['resumes_at'])}"
        if d.get("last_error"):
            line += f"\tlast error: {d['last_error']}"
        click.echo(line)


@destinations.command("resume")
@click.argument("destination")
def destinations_resume(destination: str) -> None:
    """Resume DESTINATION (as listed, e.g. https://api.example.com:443) by hand."""
    from engine.run.admission import resume

    if not resume(migrated_runtime(), destination):
        raise InputError(f"{destination} is not paused or held (hookwise destinations "
                         "lists them)")
    click.echo(f"{destination} resumed")


def _clock(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


@click.group()
def events() -> None:
    """Stored events, their match traces and executions."""


@events.command("list")
@click.option("--source")
@click.option("--limit", default=20, show_default=True)
def events_list(source: str | None, limit: int) -> None:
    from engine.store.queries import list_events

    warn_if_no_serve()
    for e in list_events(migrated_runtime().db, source=source, limit=limit).items:
        click.echo(f"{e['id']}  {e['received_at']}  {e['source']:<16} {e['status']:<10} "
                   f"matched={e['matched_count']}")


@events.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True)
def events_show(event_id: str, as_json: bool) -> None:
    from engine.store.queries import get_event

    warn_if_no_serve()
    info = get_event(migrated_runtime().db, event_id)
    if info is None:
        raise click.ClickException(f"no event {event_id}")
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    e = info["event"]
    click.echo(f"event {e['id']} from {e['source']} at {e['received_at']}: {e['status']}")
    for t in info["matches"]:
        mark = mark_of(t["matched"])
        click.echo(f"  {mark} rule {t['rule_name']} v{t['rule_version']}"
                   + (f" — {t['reason']}" if t["reason"] else ""))
    for ex in info["executions"]:
        click.echo(f"  execution {ex['id']} ({ex['rule_name']}): {ex['status']}"
                   + (f" — {ex['error']}" if ex["error"] else ""))
        for st in ex["steps"]:
            err = f" — {st['error']}" if st["error"] else ""
            click.echo(f"    {st['position']}. {st['step_id']} ({st['type']}): {st['status']}"
                       f" attempts={st['attempts']} {st['duration_ms'] or 0:.0f} ms{err}")

