"""The rule language described as plain data, for editors (the web rule builder).

``describe()`` derives everything from the tables and models that define the language —
``OPERATORS``, ``Predicate``, ``STEP_TYPES`` and the step models' ``model_fields`` — so an
operator or a step field added there reaches the builder with no change in its JavaScript.
Wording (labels, hints) is the editor's business and is not described here.

A field is ``{"name", "kind", "required", "default", "template"}`` plus, by kind,
``choices`` (``choice``), ``values`` (``mapping``: the kind of its values), ``items``
(``list``), ``fields`` (``object``) and the bounds ``ge gt le lt`` (numbers). Kinds:
``text integer number boolean choice mapping list any object condition step`` (``step``:
any step — a flow block's ``steps`` are a ``list`` of them), and ``a|b`` for
a field that takes either (``text|list``: one address or several). ``name`` is the name
users write (``json``, ``from``); ``template`` says its strings are Jinja templates.
Everything is in declaration order, in lists (JSON objects may be re-sorted on the way).
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from rules.condition_models import Condition, Predicate
from rules.model_base import TemplateAny, TemplateStr
from rules.operators import OPERATORS, Operator
from rules.step_models import HTTP_METHODS, STEP_TYPES, Step, WebhookStep

_TEMPLATE_MARKS = (*get_args(TemplateStr)[1:], *get_args(TemplateAny)[1:])
"""The validators that make a string a template (what TemplateStr/TemplateAny carry)."""

_VALIDATED_CHOICES: dict[tuple[type[BaseModel], str], tuple[str, ...]] = {
    (WebhookStep, "method"): HTTP_METHODS,
}
"""Choices a field validator enforces (its annotation is a plain ``str``)."""

_BOUNDS: dict[type, str] = {
    annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le",
    annotated_types.Lt: "lt",
}  # fmt: skip


def describe() -> dict[str, Any]:
    """The language as JSON-able data: operators, predicate fields, step types and fields.

    ``operators``: ``{"name", "value", "ordered", "negates"}`` in table order; ``value`` is
    ``none`` (``exists``…), ``list`` (``in``/``nin``: the model refuses a single value) or
    ``one``; ``ordered`` is true when swapping the sides changes the answer (``gt``…: a
    number box suits it). ``predicate``: the fields of a condition. ``step``: the fields
    every step type has (but ``type``); ``steps``: ``{"type", "summary", "fields"}`` per
    step type, its own fields only.
    """
    shared = set.intersection(*(set(m.model_fields) for m in STEP_TYPES.values()))
    first = next(iter(STEP_TYPES.values()))
    return {
        "operators": [_operator(name, op) for name, op in OPERATORS.items()],
        "predicate": _fields(Predicate),
        "step": _fields(first, only=shared - {"type"}),
        "steps": [
            {
                "type": kind,
                "summary": _summary(model),
                "fields": _fields(model, only=set(model.model_fields) - shared),
            }
            for kind, model in STEP_TYPES.items()
        ],
    }


def _operator(name: str, op: Operator) -> dict[str, Any]:
    if not op.needs_value:
        value = "none"
    elif not _predicate_accepts(name, "x") and _predicate_accepts(name, ["x"]):
        value = "list"
    else:
        value = "one"
    ordered = op.apply([2], 1) != op.apply([1], 2)
    return {"name": name, "value": value, "ordered": ordered, "negates": op.negates}


def _predicate_accepts(op: str, value: Any) -> bool:
    try:
        Predicate.model_validate({"path": "$.x", "op": op, "value": value})
    except ValidationError:
        return False
    return True


def _summary(model: type[BaseModel]) -> str:
    return (model.__doc__ or "").strip().split("\n")[0].replace("``", "")


def _fields(model: type[BaseModel], only: set[str] | None = None) -> list[dict[str, Any]]:
    return [
        _field(model, name, info)
        for name, info in model.model_fields.items()
        if only is None or name in only
    ]


def _field(model: type[BaseModel], name: str, info: FieldInfo) -> dict[str, Any]:
    shape = _shape(info.annotation)
    template = shape.pop("template", False) or any(m in _TEMPLATE_MARKS for m in info.metadata)
    out: dict[str, Any] = {
        "name": info.alias or name,
        "kind": shape.pop("kind"),
        "required": info.is_required(),
        "default": None if info.is_required() else info.get_default(call_default_factory=True),
        "template": template,
        **shape,
    }
    if choices := _VALIDATED_CHOICES.get((model, name)):
        out.update(kind="choice", choices=list(choices))
    for mark in info.metadata:
        if bound := _BOUNDS.get(type(mark)):
            out[bound] = getattr(mark, bound)
    return out


def _shape(annotation: Any) -> dict[str, Any]:
    """``kind`` (and ``template``, ``choices``, ``values``…) of a type annotation."""
    # a required field's annotation comes without its Annotated marks: the bare union
    if annotation == Condition or annotation == get_args(Condition)[0]:
        return {"kind": "condition"}
    if annotation == Step or annotation == get_args(Step)[0]:  # not expanded: recursive
        return {"kind": "step"}
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *marks = get_args(annotation)
        shape = _shape(inner)
        if any(m in _TEMPLATE_MARKS for m in marks):
            shape["template"] = True
        return shape
    if origin is Union or origin is types.UnionType:
        members = [_shape(a) for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
        shape = {"kind": "|".join(m["kind"] for m in members)}
        if any(m.get("template") for m in members):
            shape["template"] = True
        return shape
    if origin is Literal:
        return {"kind": "choice", "choices": list(get_args(annotation))}
    if origin is dict:
        values = _shape(get_args(annotation)[1])
        return {"kind": "mapping", "values": values["kind"], "template": values.get("template")}
    if origin is list:
        items = _shape(get_args(annotation)[0])
        return {"kind": "list", "items": items["kind"], "template": items.get("template")}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"kind": "object", "fields": _fields(annotation)}
    simple = {bool: "boolean", int: "integer", float: "number", str: "text"}
    return {"kind": simple.get(annotation, "any")}
