"""``/api/v1/openapi.json``: an OpenAPI 3.1 document built from the operation registry
and the same pydantic models the API validates with."""

from __future__ import annotations

import re
from functools import cache
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from flask import Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from rules.schema import RuleSpec, SourceSpec
from web.api.models import SCHEMA_REF, ErrorOut, ValidationErrorOut
from web.api.registry import OPERATIONS, PREFIX, Operation, operation

OPENAPI_VERSION = "3.1.0"
_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
Mode = Literal["validation", "serialization"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMA_REF.format(model=name)}


@cache
def _schemas() -> tuple[dict[tuple[Any, Mode], dict[str, Any]], dict[str, Any]]:
    """Every model's schema reference and the component schemas they point into."""
    wanted: list[tuple[type[BaseModel], Mode]] = [
        (RuleSpec, "validation"), (SourceSpec, "validation"),
        (ErrorOut, "serialization"), (ValidationErrorOut, "serialization"),
    ]
    for op in OPERATIONS:
        for model, mode in ((op.body, "validation"), (op.query, "validation")):
            if model is not None:
                wanted.append((model, mode))  # type: ignore[arg-type]
        wanted.extend((m, "serialization") for m in op.responses.values() if m is not None)
    unique = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(unique, ref_template=SCHEMA_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return dict(refs), defs


def _component_name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[-1]


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(op.rule)
    ]
    if op.query is not None:
        refs, defs = _schemas()
        schema = defs[_component_name(refs[(op.query, "validation")])]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = _not_null(prop)
            param = {"name": name, "in": "query", "required": name in required}
            if "description" in prop:
                param["description"] = prop.pop("description")
            params.append({**param, "schema": prop})
    return params


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent rather than null: drop the null branch."""
    prop = {k: v for k, v in prop.items() if k != "title"}
    options = prop.get("anyOf", [])
    rest = [o for o in options if o != {"type": "null"}]
    if len(options) == 2 and len(rest) == 1:
        prop.pop("anyOf")
        if prop.get("default", 0) is None:
            prop.pop("default")
        prop = {**rest[0], **prop}
    return prop


def _responses(op: Operation) -> dict[str, Any]:
    refs, _ = _schemas()
    out: dict[str, Any] = {}
    for status, model in sorted(op.responses.items()):
        item: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if model is not None:
            item["content"] = {"application/json": {
                "schema": refs[(model, "serialization")]}}
        out[str(status)] = item
    for status in sorted({401, *op.errors}):
        model = ValidationErrorOut if status == 422 else ErrorOut
        reason = {401: "no valid bearer token or login session",
                  400: "malformed JSON, or a session request without its CSRF token"}
        out[str(status)] = {
            "description": reason.get(status, HTTPStatus(status).phrase),
            "content": {"application/json": {"schema": refs[(model, "serialization")]}},
        }
    return out


def _operation(op: Operation) -> dict[str, Any]:
    refs, _ = _schemas()
    item: dict[str, Any] = {"operationId": op.endpoint.split(".", 1)[1], "tags": [op.tag],
                            "summary": op.summary}
    if op.description:
        item["description"] = op.description
    params = _parameters(op)
    if params:
        item["parameters"] = params
    if op.body is not None or op.body_ref is not None:
        schema = _ref(op.body_ref) if op.body_ref else refs[(op.body, "validation")]
        item["requestBody"] = {"required": True,
                               "content": {"application/json": {"schema": schema}}}
    item["responses"] = _responses(op)
    return item


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every registered operation."""
    _, defs = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        path = PREFIX + _PARAM.sub(r"{\1}", op.rule)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op)
    try:
        app_version = version("hookwise")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        app_version = "0.0.0"
    cookie = current_app.config.get("SESSION_COOKIE_NAME", "session")
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Hookwise API",
            "version": app_version,
            "description": "Sources, rules, secrets, events and executions of a Hookwise "
                           "instance. Errors are JSON {\"error\": code, \"message\": "
                           "sentence}; validation failures (422) add `errors` located "
                           "relative to the rule or source.",
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an API token (`hookwise token create NAME`)"},
                "session": {"type": "apiKey", "in": "cookie", "name": cookie,
                            "description": "the web UI's login session; state-changing "
                                           "requests also need the X-CSRFToken header"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }


@operation("GET", "/openapi.json", tag="meta", summary="This OpenAPI document",
           responses={200: None})
def openapi() -> Response:
    return jsonify(document())
