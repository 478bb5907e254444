"""Export and import: sources and rules as YAML, in the format ``hookwise export`` writes
and ``hookwise apply`` reads. An upload is previewed (what apply would create, change or
leave alone, or every validation error with its file and field) before it is applied."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from engine.store.catalog import Change
from engine.store.rule_files import (
    apply_loaded,
    export_documents,
    load_texts,
    merged_document,
    to_yaml,
)
from rules.errors import RuleValidationError
from web.api.rules import principal
from web.context import runtime
from web.errors import error_response
from web.ui import bp

# below werkzeug's 500 kB limit on one form field: the preview carries the text to apply
MAX_UPLOAD_BYTES = 400_000
ACTION_WORDS = {"created": "created", "updated": "changed", "unchanged": "unchanged"}


@bp.get("/export")
def transfer_export() -> str:
    catalog = runtime().catalog
    return render_template("export.html", sources=catalog.list_sources(),
                           rules=catalog.list_rules())


@bp.get("/export.yaml")
def transfer_download() -> Response:
    """Everything (``?all=1``), or the ``source=`` and ``rule=`` ticked on the page."""
    everything = request.args.get("all") == "1"
    docs = export_documents(
        runtime().catalog,
        sources=None if everything else request.args.getlist("source"),
        rules=None if everything else request.args.getlist("rule"),
        destinations=everything)
    name = "hookwise-export.yaml" if everything else "hookwise-selection.yaml"
    return Response(to_yaml(merged_document(docs)), mimetype="application/yaml", headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


def _read_upload() -> tuple[str, str] | str:
    """``(file name, text)`` of the uploaded file (or the pasted text), or a sentence
    saying why it cannot be read."""
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        raw = upload.read(MAX_UPLOAD_BYTES + 1)
        name = upload.filename
    else:
        raw = (request.form.get("text") or "").encode()
        name = request.form.get("filename") or "pasted text"
    if not raw.strip():
        return "Choose a YAML file to import (it was empty or missing)."
    if len(raw) > MAX_UPLOAD_BYTES:
        return _too_large(name)
    try:
        return name, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{name} is not UTF-8 text (byte {exc.start} cannot be read); is it YAML?"


def _too_large(name: str) -> str:
    return (f"{name} is larger than {MAX_UPLOAD_BYTES // 1000} kB, more than one import "
            "takes: split it into several files, or use hookwise apply.")


@bp.errorhandler(RequestEntityTooLarge)
def _upload_too_large(exc: RequestEntityTooLarge) -> Any:
    if request.path.startswith("/import"):
        return render_template("import.html", problem=_too_large("The file")), 413
    return error_response(413, "too_large", exc.description or "the request is too large")


def _plan_rows(changes: list[Change]) -> list[dict[str, Any]]:
    return [{"kind": c.kind, "name": c.name, "action": c.action,
             "word": ACTION_WORDS.get(c.action, c.action), "detail": c.detail}
            for c in changes]


def _plan(name: str, text: str, *, dry_run: bool) -> tuple[list[Change] | None, list[Any]]:
    try:
        return apply_loaded(runtime().catalog, load_texts({name: text}), actor=principal(),
                            dry_run=dry_run), []
    except RuleValidationError as exc:
        return None, exc.errors


@bp.route("/import", methods=["GET", "POST"])
def transfer_import() -> Any:
    """GET: the upload form; POST: the preview of what applying the file would do."""
    if request.method == "GET":
        return render_template("import.html")
    got = _read_upload()
    if isinstance(got, str):
        return render_template("import.html", problem=got), 400
    name, text = got
    changes, errors = _plan(name, text, dry_run=True)
    if changes is None:
        return render_template("import.html", filename=name, errors=errors), 400
    rows = _plan_rows(changes)
    return render_template("import.html", filename=name, text=text, plan=rows,
                           changing=sum(r["action"] != "unchanged" for r in rows))


@bp.post("/import/apply")
def transfer_apply() -> Any:
    name = request.form.get("filename") or "upload"
    text = request.form.get("text") or ""
    changes, errors = _plan(name, text, dry_run=False)
    if changes is None:  # the catalog moved since the preview
        return render_template("import.html", filename=name, errors=errors), 400
    n = sum(c.action != "unchanged" for c in changes)
    parts = [f"{sum(c.action == a for c in changes)} {w}"
             for a, w in ACTION_WORDS.items() if any(c.action == a for c in changes)]
    flash(f"Imported {name}: {', '.join(parts) or 'nothing in it'}." if n else
          f"Imported {name}: everything in it was already the same.", "success")
    return redirect(url_for("ui.rules_list"))
