"""The rule builder: one page that edits a rule as a form (or as YAML), tests it on a sample
payload, backtests it over stored events and saves it — all through the JSON API.

The server only renders the page with its starting data (the stored rule, the sources, and
the rule language as ``rules.vocabulary.describe`` gives it: operators, step types and their
fields, which the page builds its form from); everything the page does afterwards goes
through ``/api/v1`` with the session cookie.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, render_template, request, url_for
from jinja2 import TemplateNotFound

from engine.store.catalog import spec_from_row
from engine.store.queries import list_events
from rules.vocabulary import describe
from web.context import runtime

bp = Blueprint("builder", __name__)

NEW_RULE_SOURCE = "*"


def _source_slugs() -> list[str]:
    return [s.slug for s in runtime().catalog.list_sources()]


def _page(rule: dict[str, Any], *, editing: str | None, sources: list[str]) -> Any:
    return render_template(
        "rule_builder.html", rule=rule, editing=editing, sources=sources, language=describe(),
        connections=[c.name for c in runtime().catalog.list_connections()],
    )


@bp.get("/rules/new")
def new_rule() -> Any:
    """An empty rule, for ``?source=<slug>`` when given (and known), else the source that
    received the newest event (the first source when none did); every source (``*``) only
    when there is no source yet — it is a choice to make, not a default."""
    slugs = _source_slugs()
    wanted = request.args.get("source", "")
    source = wanted if wanted in slugs else _default_source(slugs)
    rule: dict[str, Any] = {"name": "", "source": source, "enabled": True, "priority": 0,
                            "actions": []}
    if not runtime().catalog.list_rules():  # a first rule: a target that works anywhere
        rule["actions"] = [first_step(source)]
    return _page(rule, editing=None, sources=slugs)


def _default_source(slugs: list[str]) -> str:
    if not slugs:
        return NEW_RULE_SOURCE
    if len(slugs) > 1:
        newest = list_events(runtime().db, limit=1).items
        if newest and newest[0]["source"] in slugs:
            return str(newest[0]["source"])
    return slugs[0]


def first_step(source: str) -> dict[str, Any]:
    """A webhook step to this instance's request inspector (``/inspect/<source>``), which
    outgoing steps may reach without HOOKWISE_EGRESS_ALLOW (``web.ui.inspect``)."""
    name = source if source != NEW_RULE_SOURCE else "first-rule"
    return {"id": "inspect", "type": "webhook", "method": "POST",
            "url": url_for("inspect_in.receive", name=name, _external=True),
            "json": {"event": "{{ event.id }}", "body": "{{ body }}"}}


def init_app(app: Flask) -> None:
    """Register the builder's pages (``web.ui.init_app`` calls this)."""
    app.register_blueprint(bp)


@bp.errorhandler(404)
def _not_found(exc: Exception) -> Any:
    message = getattr(exc, "description", "") or "There is nothing at this address."
    try:
        return render_template("not_found.html", message=message), 404
    except TemplateNotFound:
        return message, 404


@bp.get("/rules/<name>/edit")
def edit_rule(name: str) -> Any:
    row = runtime().catalog.get_rule(name)
    if row is None:
        abort(404, description=f"There is no rule named {name!r}.")
    return _page(spec_from_row(row), editing=row.name, sources=_source_slugs())
