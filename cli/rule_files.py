"""Commands for rule files and payloads: ``apply``, ``export``, ``test``, ``send``."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

import click

from cli.common import (
    DEFAULT_URL,
    POINT_ELSEWHERE,
    InputError,
    fail_validation,
    instance_url,
    mark_of,
    migrated_runtime,
)
from rules.errors import RuleValidationError


def _cli_actor() -> str:
    """``cli:<login name>`` for the rules' history."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container's numeric user)
        return "cli"


DEFAULT_EXPORT_DIR = "hookwise-rules/"  # what the README suggests: no package is called so
MAX_SKIPPED_SHOWN = 10


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="show what would change; write nothing")
def apply(paths: tuple[str, ...], dry_run: bool) -> None:
    """Upsert sources and rules from YAML files or folders."""
    from engine.store.rule_files import apply_paths, expand_folders, verify_warnings

    try:
        _, skipped = expand_folders(paths)
    except RuleValidationError as exc:
        fail_validation(exc)
    for path, why in skipped[:MAX_SKIPPED_SHOWN]:
        click.echo(f"skipped {path}: {why}", err=True)
    if len(skipped) > MAX_SKIPPED_SHOWN:
        click.echo(f"skipped {len(skipped) - MAX_SKIPPED_SHOWN} more file(s) that are not "
                   "rule files", err=True)
    rt = migrated_runtime()
    try:
        changes = apply_paths(rt.catalog, paths, actor=_cli_actor(), dry_run=dry_run)
    except RuleValidationError as exc:
        fail_validation(exc)
    for c in changes:
        detail = f" ({c.detail})" if c.detail and c.action == "updated" else ""
        click.echo(f"{c.kind} {c.name}: {'would be ' if dry_run else ''}{c.action}{detail}")
    n = sum(c.action != "unchanged" for c in changes)
    if dry_run:
        click.echo(f"{n} would change, {len(changes) - n} unchanged (dry run: nothing written)")
        return
    click.echo(f"{n} changed, {len(changes) - n} unchanged")
    slugs = [c.name for c in changes if c.kind == "source"]
    for warning in verify_warnings(rt.catalog, rt.secrets, slugs):
        click.echo(f"warning: {warning}", err=True)


@click.command()
@click.argument("directory", required=False)
def export(directory: str | None) -> None:
    """Write every source and rule back as YAML (to DIR, or stdout).

    DIR is a folder of its own (hookwise-rules/, say): a Python package's folder (one
    holding __init__.py, like Hookwise's own rules/) is refused."""
    from engine.store.rule_files import export as do_export

    if directory is not None and (Path(directory) / "__init__.py").exists():
        raise InputError(f"{directory}: is a Python package (it holds __init__.py), not a "
                         f"folder for rule files; export into one of its own, e.g. "
                         f"hookwise export {DEFAULT_EXPORT_DIR}")
    rt = migrated_runtime()
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
    from engine.errors import BodyError
    from engine.ingress.parsing import parse_body

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


@click.command("test")
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
        fail_validation(exc)
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
            mark = mark_of(node.get("result"))
            click.echo(f"{pad}{mark} {group}:")
            for child in node[group]:
                _print_trace(child, depth + 1)
            return
    if "not" in node:
        click.echo(f"{pad}{mark_of(node.get('result'))} not:")
        _print_trace(node["not"], depth + 1)
        return
    if node.get("skipped"):
        click.echo(f"{pad}  -  {node.get('condition')} (not evaluated: already decided)")
        return
    click.echo(f"{pad}{mark_of(node.get('result'))} {predicate_line(node)}")


def predicate_line(node: dict[str, Any]) -> str:
    """One predicate of a trace as ``hookwise test`` prints it, with its options as the UI
    shows them: ``$.body.n gt $.body.limits[*] (match all)   saw [7]; $.body.limits[*]
    selected [5, 10]``."""
    if node.get("value_path"):
        rhs = f" {node['value_path']}"
    else:
        value = node.get("value")
        rhs = "" if value is None else f" {json.dumps(value, ensure_ascii=False)}"
    options = (" (ignore_case)" if node.get("ignore_case") else "") + (
        " (match all)" if node.get("match") == "all" else "")
    line = (f"{node.get('path')} {node.get('op')}{rhs}{options}"
            f"   saw {json.dumps(node.get('seen'), default=str, ensure_ascii=False)}")
    if node.get("value_path_missing"):
        line += f"; nothing at {node['value_path']}"
    elif "value_seen" in node:
        line += (f"; {node['value_path']} selected "
                 f"{json.dumps(node['value_seen'], default=str, ensure_ascii=False)}")
    return line


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
    _print_steps(rep.steps, "  ")
    click.echo("  (dry run: nothing was sent, written or stored)")


def _print_steps(steps: Any, pad: str) -> None:
    """Each step's preview; a flow block's steps indented under it (a branch's case, a
    foreach's items)."""
    for st in steps:
        if not st.would_run:
            click.echo(f"{pad}step {st.id} ({st.type}): skipped — {st.skipped_reason}")
        elif st.error:
            click.echo(f"{pad}step {st.id} ({st.type}): " + click.style("ERROR", fg="red")
                       + f" {st.error}")
        elif st.type == "branch":
            case = "no case holds" if st.case is None else f"case {st.case} runs"
            click.echo(f"{pad}step {st.id} (branch): {case}")
            _print_steps(st.steps or [], pad + "  ")
        elif st.type == "foreach":
            click.echo(f"{pad}step {st.id} (foreach): {len(st.items or [])} item(s)")
            for i, item in enumerate(st.items or []):
                click.echo(f"{pad}  item {i}:")
                _print_steps(item, pad + "    ")
        else:
            rendered = json.dumps(st.rendered, indent=2, default=str).replace(
                "\n", "\n" + pad + "  ")
            click.echo(f"{pad}step {st.id} ({st.type}) would send:\n{pad}  {rendered}")


@click.command()
@click.argument("source")
@click.argument("file")
@click.option("--url", help="base URL of a running Hookwise (default: HOOKWISE_URL, else "
                            "where 'hookwise serve' recorded it listens in the data dir, "
                            f"else {DEFAULT_URL})")
@click.option("--header", "headers", multiple=True, help="K:V, repeatable")
def send(source: str, file: str, url: str | None, headers: tuple[str, ...]) -> None:
    """POST FILE to a running instance's /hooks/SOURCE."""
    import httpx

    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None
    ctype = mimetypes.guess_type(file)[0] or "application/octet-stream"
    hdrs = {"Content-Type": ctype, **_headers(headers)}
    base, where = instance_url(url)
    try:
        resp = httpx.post(f"{base.rstrip('/')}/hooks/{source}", content=raw, headers=hdrs,
                          timeout=30)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach {base} ({where}): {exc}; start 'hookwise serve', or "
            f"{POINT_ELSEWHERE}") from None
    click.echo(f"{resp.status_code} {resp.text}")
    raise SystemExit(0 if resp.is_success else 1)
