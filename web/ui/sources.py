"""Sources: the list with ingest URLs, and the create/edit form."""

from __future__ import annotations

import typing
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.errors import Conflict
from rules.errors import RuleValidationError
from rules.schema import RespondSpec, SourceSpec, VerifySpec, dump_source, parse_source
from web.api.rules import principal
from web.context import runtime
from web.ui import bp

SCHEMES: tuple[str, ...] = typing.get_args(VerifySpec.model_fields["scheme"].annotation)
RESPOND_MODES: tuple[str, ...] = typing.get_args(RespondSpec.model_fields["mode"].annotation)
ALGORITHMS: tuple[str, ...] = typing.get_args(VerifySpec.model_fields["algorithm"].annotation)
ENCODINGS: tuple[str, ...] = typing.get_args(VerifySpec.model_fields["encoding"].annotation)

SCHEME_HINTS = {
    "none": "Anyone who knows the URL can post.",
    "token": "A shared token in a header or the ?token= query parameter.",
    "basic": "HTTP Basic authentication (username and the secret as password).",
    "hmac": "An HMAC of the body in a header you name (algorithm, encoding, prefix).",
    "github": "X-Hub-Signature-256, as GitHub sends it.",
    "stripe": "Stripe-Signature with a timestamp (5 min tolerance).",
    "slack": "X-Slack-Signature with a timestamp (5 min tolerance).",
    "standard": "Standard Webhooks / Svix headers (webhook-id, -timestamp, -signature).",
    "shopify": "X-Shopify-Hmac-Sha256 (base64).",
    "twilio": "X-Twilio-Signature over the URL and form fields.",
    "telegram": "X-Telegram-Bot-Api-Secret-Token.",
}

# where a FieldError.loc is shown in the form (anything else goes above the form)
LOC_FIELDS = {
    "slug": "slug", "description": "description",
    "verify": "verify.secret", "verify.scheme": "verify.scheme", "verify.secret": "verify.secret",
    "verify.header": "verify.header", "verify.param": "verify.param",
    "verify.username": "verify.username", "verify.algorithm": "verify.algorithm",
    "verify.encoding": "verify.encoding", "verify.prefix": "verify.prefix",
    "verify.tolerance_s": "verify.tolerance_s",
    "dedup": "dedup", "dedup.header": "dedup", "dedup.path": "dedup",
    "respond": "respond.mode", "respond.mode": "respond.mode",
    "respond.timeout_ms": "respond.timeout_ms",
}


def ingest_url(slug: str) -> str:
    return url_for("ingest.hook", source=slug, _external=True)


def form_from_spec(spec: dict[str, Any]) -> dict[str, str]:
    """The flat form fields of a stored source document."""
    verify = spec.get("verify") or {}
    dedup = spec.get("dedup") or {}
    respond = spec.get("respond") or {}
    out = {"slug": spec.get("slug", ""), "description": spec.get("description", "")}
    for key in ("scheme", "secret", "header", "param", "username", "algorithm", "encoding",
                "prefix", "tolerance_s"):
        value = verify.get(key)
        out[f"verify.{key}"] = "" if value is None else str(value)
    out["verify.scheme"] = out["verify.scheme"] or "none"
    out["dedup.kind"] = "header" if dedup.get("header") else "path" if dedup.get("path") else ""
    out["dedup.value"] = dedup.get("header") or dedup.get("path") or ""
    out["respond.mode"] = respond.get("mode", "immediate")
    out["respond.timeout_ms"] = str(respond.get("timeout_ms", ""))
    return out


def spec_from_form(form: dict[str, str], *, keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """A source document from the form; empty fields are left out (schema defaults).
    ``keep``: the stored document, whose fields the form does not show are kept."""
    def val(key: str) -> str:
        return (form.get(key) or "").strip()

    doc: dict[str, Any] = {"slug": val("slug")}
    if val("description"):
        doc["description"] = val("description")
    verify: dict[str, Any] = {"scheme": val("verify.scheme") or "none"}
    for key in ("secret", "header", "param", "username", "algorithm", "encoding", "prefix"):
        if val(f"verify.{key}"):
            verify[key] = val(f"verify.{key}")
    if val("verify.tolerance_s"):
        verify["tolerance_s"] = _int_or_text(val("verify.tolerance_s"))
    doc["verify"] = verify
    kind, dedup_value = val("dedup.kind"), val("dedup.value")
    if kind in ("header", "path"):
        doc["dedup"] = {kind: dedup_value} if dedup_value else {}
    respond: dict[str, Any] = {"mode": val("respond.mode") or "immediate"}
    if val("respond.timeout_ms"):
        respond["timeout_ms"] = _int_or_text(val("respond.timeout_ms"))
    if keep and (keep.get("respond") or {}).get("fallback") is not None:
        respond["fallback"] = keep["respond"]["fallback"]
    doc["respond"] = respond
    return doc


def _int_or_text(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value  # the schema reports it beside the field


def errors_by_field(exc: RuleValidationError) -> tuple[dict[str, list[str]], list[str]]:
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for err in exc.errors:
        key = LOC_FIELDS.get(err.loc) or LOC_FIELDS.get(err.loc.split(".")[0] if err.loc else "")
        if key:
            fields.setdefault(key, []).append(err.message)
        else:
            general.append(str(err))
    return fields, general


@bp.get("/sources")
def sources_list() -> str:
    rows = []
    for row in runtime().catalog.list_sources():
        spec = parse_source(row.spec)
        rows.append({"slug": row.slug, "spec": spec, "url": ingest_url(row.slug),
                     "updated_at": row.updated_at.isoformat()})
    return render_template("sources.html", sources=rows)


def _render_form(form: dict[str, str], *, editing: bool, status: int = 200,
                 errors: dict[str, list[str]] | None = None,
                 general: list[str] | None = None) -> tuple[str, int]:
    secrets = runtime().secrets.names()
    return render_template(
        "source_form.html", form=form, editing=editing, errors=errors or {},
        general=general or [], schemes=SCHEMES, hints=SCHEME_HINTS, modes=RESPOND_MODES,
        algorithms=ALGORITHMS, encodings=ENCODINGS, secret_names=secrets,
        url=ingest_url(form["slug"]) if editing else None,
    ), status


def _save(form: dict[str, str], *, editing: bool,
          keep: dict[str, Any] | None = None) -> Response | tuple[str, int]:
    doc = spec_from_form(form, keep=keep)
    try:
        spec: SourceSpec = parse_source(doc)
    except RuleValidationError as exc:
        fields, general = errors_by_field(exc)
        return _render_form(form, editing=editing, status=400, errors=fields, general=general)
    [change] = runtime().catalog.save([spec], [], actor=principal())
    flash(f"Source “{spec.slug}” {change.action}.", "success")
    return redirect(url_for("ui.sources_list"))


@bp.route("/sources/new", methods=["GET", "POST"])
def source_new() -> Any:
    if request.method == "GET":
        return _render_form(form_from_spec({}), editing=False)
    form = request.form.to_dict()
    slug = (form.get("slug") or "").strip()
    if slug and runtime().catalog.get_source(slug) is not None:
        return _render_form(form, editing=False, status=400,
                            errors={"slug": [f"a source “{slug}” exists already"]})
    return _save(form, editing=False)


@bp.route("/sources/<slug>", methods=["GET", "POST"])
def source_edit(slug: str) -> Any:
    row = runtime().catalog.get_source(slug)
    if row is None:
        abort(404, f"There is no source “{slug}”.")
    if request.method == "GET":
        return _render_form(form_from_spec(dump_source(parse_source(row.spec))), editing=True)
    form = request.form.to_dict() | {"slug": slug}  # the slug is the URL: not renamed here
    return _save(form, editing=True, keep=dict(row.spec))


@bp.route("/sources/<slug>/delete", methods=["GET", "POST"])
def source_delete(slug: str) -> Any:
    """A page that says what goes with the source (and asks what to do with the rules
    that use it: delete them too, or keep them and not delete the source)."""
    catalog = runtime().catalog
    if catalog.get_source(slug) is None:
        if request.method == "POST":
            flash(f"There is no source “{slug}” (deleted already?).", "error")
            return redirect(url_for("ui.sources_list"))
        abort(404, f"There is no source “{slug}”.")
    users = sorted(r.name for r in catalog.list_rules() if r.source == slug)
    if request.method == "GET":
        return render_template("source_delete.html", slug=slug, url=ingest_url(slug),
                               rules=users, executions=catalog.executions_of(users))
    choice = request.form.get("rules", "refuse" if users else "")
    if users and choice != "delete":
        flash(f"Nothing was deleted: source “{slug}” is used by {_names(users)}. "
              "Delete or move those rules first, or choose to delete them with it.", "error")
        return redirect(url_for("ui.source_delete", slug=slug))
    try:
        catalog.delete_source(slug, with_rules=bool(users), actor=principal())
    except Conflict:  # a rule started using it since the page was shown
        flash(f"Nothing was deleted: a rule now uses source “{slug}”; look again.", "error")
        return redirect(url_for("ui.source_delete", slug=slug))
    gone = f" and {_names(users)}" if users else ""
    flash(f"Source “{slug}”{gone} deleted. Events already received are kept.", "success")
    return redirect(url_for("ui.sources_list"))


def _names(rules: list[str]) -> str:
    quoted = ", ".join(f"“{n}”" for n in rules)
    return f"rule {quoted}" if len(rules) == 1 else f"rules {quoted}"
