"""rules.vocabulary.describe: the language as data, derived from its tables and models (the
rule builder builds its form from it, so these tests hold it to the source of truth)."""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

import pytest
from pydantic import BaseModel

from rules.condition_models import Predicate
from rules.operators import OPERATORS, Operator
from rules.schema import RetrySpec, SignSpec
from rules.step_models import HTTP_METHODS, STEP_TYPES, DbWriteStep, _StepBase
from rules.vocabulary import describe


def names(model: type[BaseModel]) -> list[str]:
    """The field names users write (aliases), in declaration order."""
    return [info.alias or name for name, info in model.model_fields.items()]


def by_name(fields: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in fields}


def step(kind: str) -> dict[str, dict[str, Any]]:
    [found] = [s for s in describe()["steps"] if s["type"] == kind]
    return by_name(found["fields"])


def test_it_is_plain_json() -> None:
    data = describe()
    assert json.loads(json.dumps(data)) == data


def test_every_operator_in_table_order() -> None:
    ops = describe()["operators"]
    assert [o["name"] for o in ops] == list(OPERATORS)
    for o in ops:
        op = OPERATORS[o["name"]]
        assert (o["value"] == "none") is (not op.needs_value)
        assert o["negates"] == op.negates


def test_value_shapes_follow_the_predicate_model() -> None:
    ops = {o["name"]: o for o in describe()["operators"]}
    assert {n for n, o in ops.items() if o["value"] == "none"} == {
        "exists", "nexists", "empty", "nempty"}  # fmt: skip
    assert {n for n, o in ops.items() if o["value"] == "list"} == {"in", "nin"}
    assert {n for n, o in ops.items() if o["ordered"]} == {"gt", "ge", "lt", "le"}
    for name, o in ops.items():  # what the model says about a single value agrees
        if o["value"] == "one":
            Predicate.model_validate({"path": "$.a", "op": name, "value": "x"})
        if o["value"] == "list":
            with pytest.raises(ValueError, match="needs a list"):
                Predicate.model_validate({"path": "$.a", "op": name, "value": "x"})


def test_an_added_operator_is_described(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(OPERATORS, "near", Operator("near", whole=lambda seen, match: True,
                                                    needs_value=False))  # fmt: skip
    assert describe()["operators"][-1] == {
        "name": "near", "value": "none", "ordered": False, "negates": None}  # fmt: skip


def test_predicate_fields_and_options() -> None:
    fields = by_name(describe()["predicate"])
    assert list(fields) == names(Predicate)
    assert fields["op"]["choices"] == list(OPERATORS)
    assert fields["match"]["choices"] == ["any", "all"] and fields["match"]["default"] == "any"
    assert fields["ignore_case"] == {"name": "ignore_case", "kind": "boolean", "required": False,
                                     "default": False, "template": False}  # fmt: skip


def test_step_types_and_their_fields_equal_the_models() -> None:
    data = describe()
    common = [f["name"] for f in data["step"]]
    assert common == ["id", "when", "on_error", "retry"]
    assert [s["type"] for s in data["steps"]] == list(STEP_TYPES)
    for described in data["steps"]:
        model = STEP_TYPES[described["type"]]
        own = [f["name"] for f in described["fields"]]
        assert [n for n in names(model) if n not in common and n != "type"] == own
        for f in described["fields"]:
            info = next(i for n, i in model.model_fields.items() if (i.alias or n) == f["name"])
            assert f["required"] is info.is_required()
            if not f["required"]:
                assert f["default"] == info.get_default(call_default_factory=True)
    assert data["steps"][0]["summary"] == (
        "Send an HTTP request; json (typed) or body (raw text), not both.")  # the docstring's line


def test_defaults_choices_and_kinds() -> None:
    webhook = step("webhook")
    assert webhook["method"]["kind"] == "choice"
    assert webhook["method"]["choices"] == list(HTTP_METHODS)
    assert webhook["method"]["default"] == "POST"
    assert webhook["timeout_s"] == {
        "name": "timeout_s", "kind": "number", "required": False, "default": 10,
        "template": False, "gt": 0, "le": 120,
    }  # fmt: skip
    assert webhook["url"]["template"] and webhook["url"]["required"]
    assert webhook["headers"]["kind"] == "mapping" and webhook["headers"]["values"] == "text"
    assert webhook["query"]["values"] == "any" and webhook["json"]["kind"] == "any"
    assert [f["name"] for f in webhook["sign"]["fields"]] == names(SignSpec)
    assert by_name(webhook["sign"]["fields"])["scheme"]["default"] == "standard"
    assert step("email")["to"]["kind"] == "text|list" and step("email")["to"]["template"]
    assert step("delay")["seconds"]["kind"] == "number|text"
    db = step("db_write")
    assert db["mode"]["choices"] == list(get_args(DbWriteStep.model_fields["mode"].annotation))
    assert db["connection"]["default"] == "default" and not db["connection"]["template"]
    assert db["key"]["kind"] == "list" and db["values"]["required"]
    assert step("reply")["status"]["default"] == 200

    shared = by_name(describe()["step"])
    assert shared["on_error"]["choices"] == ["stop", "continue"]
    assert shared["when"]["kind"] == "condition"
    retry = by_name(shared["retry"]["fields"])
    assert list(retry) == names(RetrySpec)
    assert {n: f["default"] for n, f in retry.items()} == RetrySpec().model_dump()
    assert retry["max_attempts"]["kind"] == "integer" and retry["max_attempts"]["ge"] == 1


def test_an_added_step_type_and_field_are_described(monkeypatch: pytest.MonkeyPatch) -> None:
    class PageStep(_StepBase):
        """Page whoever is on call."""

        type: Literal["page"]
        team: str
        urgency: Literal["low", "high"] = "high"

    monkeypatch.setitem(STEP_TYPES, "page", PageStep)
    described = describe()["steps"][-1]
    assert described["type"] == "page" and described["summary"] == "Page whoever is on call."
    assert [f["name"] for f in described["fields"]] == ["team", "urgency"]
    assert by_name(described["fields"])["urgency"]["choices"] == ["low", "high"]
