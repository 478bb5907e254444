"""JSONPath compilation, the operator table and condition trees with their explanations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rules.conditions import compile_condition
from rules.errors import PathError
from rules.operators import OPERATORS, as_number
from rules.paths import compile_path
from rules.schema import AllGroup, AnyGroup, NotGroup, Predicate

DOC: dict[str, Any] = {
    "body": {
        "type": "payment_intent.succeeded",
        "amount": 1500,
        "amount_text": "1500",
        "ratio": 0.5,
        "flag": True,
        "none": None,
        "empty_str": "",
        "empty_list": [],
        "empty_obj": {},
        "name": "Ada Lovelace",
        "tags": ["vip", "Beta", "eu"],
        "meta": {"plan": "pro"},
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 5}],
        "limit": 1000,
        "a b": "spaced",
        "where": "keyword",
    },
    "headers": {"x-test-mode": "true", "content-type": "application/json"},
    "query": {"token": "abc"},
    "event": {"id": "e1", "source": "stripe"},
}


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "simple", "expected"),
    [
        ("$.body.type", True, ["payment_intent.succeeded"]),
        ("$.headers.x-test-mode", True, ["true"]),
        ("$.body.items[0].sku", True, ["A-1"]),
        ("$.body.items[-1].qty", True, [5]),
        ("$['body']['a b']", True, ["spaced"]),
        ('$.body["a b"]', True, ["spaced"]),
        ("$.body.where", True, ["keyword"]),
        ("$.body.none", True, [None]),
        ("$", True, [DOC]),
        ("$.body.missing", True, []),
        ("$.body.items[9].sku", True, []),
        ("$.body.meta[0]", True, []),
        ("$.body.tags.x", True, []),
        ("$.body.items[*].sku", False, ["A-1", "B-2"]),
        ("$.body.items[?(@.qty > 3)].sku", False, ["B-2"]),
        ("$..sku", False, ["A-1", "B-2"]),
        ("$.body.where[*]", False, []),  # jsonpath-ng needs the keyword quoted; done for it
        ("$.headers.x-test-mode[*]", False, []),
    ],
)
def test_paths_select(expr: str, simple: bool, expected: list[Any]) -> None:
    path = compile_path(expr)
    assert path.expr == expr
    assert path.is_simple is simple
    assert (path.segments is not None) is simple
    assert path.values(DOC) == expected


def test_simple_path_segments_are_exposed_for_indexing() -> None:
    assert compile_path("$.body.items[0]['a b']").segments == ("body", "items", 0, "a b")


def test_compile_path_is_cached() -> None:
    assert compile_path("$.body.cached") is compile_path("$.body.cached")


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [("body.type", "must start with '$'"), ("$.body[", "$.body["), ("$.a b", "$.a b"), ("", "")],
)
def test_bad_paths_raise_path_error_naming_the_expression(expr: str, fragment: str) -> None:
    with pytest.raises(PathError) as info:
        compile_path(expr)
    assert repr(expr) in str(info.value)
    assert fragment in str(info.value)


# --- operators -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "seen", "value", "options", "expected"),
    [
        # eq / ne: numeric strings equal numbers, bools are not numbers
        ("eq", ["x"], "x", {}, True),
        ("eq", ["x"], "X", {}, False),
        ("eq", ["x"], "X", {"ignore_case": True}, True),
        ("eq", ["1500"], 1500, {}, True),
        ("eq", [1500], "1500.0", {}, True),
        ("eq", [1500.0], 1500, {}, True),
        ("eq", ["1500"], "1500.0", {}, True),  # two numeric strings compare as numbers
        ("eq", [True], 1, {}, False),
        ("eq", [1], True, {}, False),
        ("eq", [True], True, {}, True),
        ("eq", [None], "null", {}, False),
        ("eq", [], "x", {}, False),
        ("eq", ["a", "b"], "b", {}, True),
        ("eq", ["a", "b"], "b", {"match": "all"}, False),
        ("eq", ["b", "b"], "b", {"match": "all"}, True),
        ("eq", [], "b", {"match": "all"}, False),
        ("eq", [{"k": 1}], {"k": 1}, {}, True),
        ("ne", ["x"], "y", {}, True),
        ("ne", ["x"], "x", {}, False),
        ("ne", ["x"], "X", {"ignore_case": True}, False),
        ("ne", [], "x", {}, True),  # nothing there: it is not "x"
        ("ne", ["a", "spam"], "spam", {}, False),  # any: no value may equal
        ("ne", ["spam", "spam"], "spam", {"match": "all"}, False),
        ("ne", ["a", "spam"], "spam", {"match": "all"}, False),  # all: still no value may equal
        ("ne", ["1500"], 1500, {}, False),
        # ordering: numbers and numeric strings, never bools; strings lexicographic
        ("gt", [1500], 1000, {}, True),
        ("gt", ["1500"], 1000, {}, True),
        ("gt", [1500], "1000", {}, True),
        ("gt", [10], 1000, {}, False),
        ("gt", [1000], 1000, {}, False),
        ("ge", [1000], 1000, {}, True),
        ("ge", ["999.5"], 1000, {}, False),
        ("lt", [-1], 0, {}, True),
        ("lt", ["1e2"], 101, {}, True),
        ("le", [0.5], 0.5, {}, True),
        ("le", [2], 1, {}, False),
        ("gt", [True], 0, {}, False),
        ("lt", [0], True, {}, False),
        ("gt", ["abc"], 1, {}, False),
        ("gt", [None], 1, {}, False),
        ("gt", [[5]], 1, {}, False),
        ("gt", ["2024-02-01"], "2024-01-31", {}, True),
        ("lt", ["B"], "a", {}, True),
        ("lt", ["B"], "a", {"ignore_case": True}, False),
        ("gt", [1, 5], 3, {}, True),
        ("gt", [1, 5], 3, {"match": "all"}, False),
        ("gt", [4, 5], 3, {"match": "all"}, True),
        ("gt", [], 3, {}, False),
        # in / nin
        ("in", ["usd"], ["usd", "eur"], {}, True),
        ("in", ["USD"], ["usd", "eur"], {}, False),
        ("in", ["USD"], ["usd", "eur"], {"ignore_case": True}, True),
        ("in", ["usd"], ["USD", "EUR"], {"ignore_case": True}, True),
        ("in", ["2"], [1, 2], {}, True),
        ("in", [True], [1, 2], {}, False),
        ("in", ["gbp"], ["usd", "eur"], {}, False),
        ("in", [], ["usd"], {}, False),
        ("in", ["gbp", "usd"], ["usd"], {}, True),
        ("in", ["gbp", "usd"], ["usd"], {"match": "all"}, False),
        ("nin", ["gbp"], ["usd", "eur"], {}, True),
        ("nin", ["usd"], ["usd", "eur"], {}, False),
        ("nin", ["USD"], ["usd"], {"ignore_case": True}, False),
        ("nin", [], ["usd"], {}, True),
        ("nin", ["gbp", "usd"], ["usd"], {}, False),
        # contains / ncontains: substring, list member, mapping key
        ("contains", ["Ada Lovelace"], "Love", {}, True),
        ("contains", ["Ada Lovelace"], "love", {}, False),
        ("contains", ["Ada Lovelace"], "love", {"ignore_case": True}, True),
        ("contains", [["vip", "eu"]], "eu", {}, True),
        ("contains", [["vip", "Beta"]], "beta", {"ignore_case": True}, True),
        ("contains", [[1, 2]], "2", {}, True),
        ("contains", [{"plan": "pro"}], "plan", {}, True),
        ("contains", [{"plan": "pro"}], "pro", {}, False),
        ("contains", ["abc5"], 5, {}, True),
        ("contains", [15], "5", {}, False),
        ("contains", [None], "x", {}, False),
        ("contains", [], "x", {}, False),
        ("ncontains", ["Ada Lovelace"], "Babbage", {}, True),
        ("ncontains", [["vip"]], "vip", {}, False),
        ("ncontains", [], "x", {}, True),
        # startswith / endswith: strings, numbers as text
        ("startswith", ["payment_intent.succeeded"], "payment_intent.", {}, True),
        ("startswith", ["Payment"], "pay", {}, False),
        ("startswith", ["Payment"], "pay", {"ignore_case": True}, True),
        ("startswith", [4242], "42", {}, True),
        ("startswith", [["ab"]], "a", {}, False),
        ("endswith", ["invoice.pdf"], ".pdf", {}, True),
        ("endswith", ["invoice.PDF"], ".pdf", {"ignore_case": True}, True),
        ("endswith", ["invoice.pdf"], ".doc", {}, False),
        ("endswith", [], ".pdf", {}, False),
        # regex: re.search
        ("regex", ["order-1042"], r"\d+$", {}, True),
        ("regex", ["ORDER"], "^order", {}, False),
        ("regex", ["ORDER"], "^order", {"ignore_case": True}, True),
        ("regex", [1042], r"^10\d\d$", {}, True),
        ("regex", [None], ".*", {}, False),
        ("regex", ["a1", "b"], r"\d", {}, True),
        ("regex", ["a1", "b"], r"\d", {"match": "all"}, False),
        ("regex", [], ".*", {}, False),
        # exists / nexists: did the path select anything (null counts)
        ("exists", ["x"], None, {}, True),
        ("exists", [None], None, {}, True),
        ("exists", [], None, {}, False),
        ("nexists", [], None, {}, True),
        ("nexists", [None], None, {}, False),
        # empty / nempty: None "", [], {} or nothing at all
        ("empty", [], None, {}, True),
        ("empty", [None], None, {}, True),
        ("empty", [""], None, {}, True),
        ("empty", [[]], None, {}, True),
        ("empty", [{}], None, {}, True),
        ("empty", [0], None, {}, False),
        ("empty", [False], None, {}, False),
        ("empty", [" "], None, {}, False),
        ("empty", ["", "x"], None, {}, True),
        ("empty", ["", "x"], None, {"match": "all"}, False),
        ("nempty", ["x"], None, {}, True),
        ("nempty", [0], None, {}, True),
        ("nempty", [], None, {}, False),
        ("nempty", [None], None, {}, False),
    ],
)
def test_operator_table(
    op: str, seen: list[Any], value: Any, options: dict[str, Any], expected: bool
) -> None:
    assert OPERATORS[op].apply(seen, value, **options) is expected


def test_every_operator_is_covered_and_named() -> None:
    assert sorted(OPERATORS) == sorted(
        "eq ne gt ge lt le in nin contains ncontains startswith endswith regex "
        "exists nexists empty nempty".split()
    )
    assert all(name == op.name for name, op in OPERATORS.items())


@pytest.mark.parametrize(
    ("value", "number"),
    [(1, 1), (1.5, 1.5), ("42", 42), ("-3.5", -3.5), ("1e3", 1000.0), (".5", None), ("0.5", 0.5),
     (True, None), ("nan", None), ("inf", None), (" 1", None), ("1_000", None), (None, None)],
)  # fmt: skip
def test_as_number(value: Any, number: Any) -> None:
    assert as_number(value) == number
    assert type(as_number(value)) is type(number)


# --- predicates and trees ------------------------------------------------------------------


def _pred(**kwargs: Any) -> Predicate:
    return Predicate.model_validate(kwargs)


@pytest.mark.parametrize(
    ("spec", "matched", "reason"),
    [
        ({"path": "$.body.amount", "op": "gt", "value": 1000}, True, None),
        (
            {"path": "$.body.amount", "op": "gt", "value": 2000},
            False,
            "failed at `$.body.amount gt 2000`: saw 1500",
        ),
        (
            {"path": "$.headers.x-missing", "op": "exists"},
            False,
            "failed at `$.headers.x-missing exists`: nothing at that path",
        ),
        (
            {"path": "$.body.type", "op": "eq", "value": "invoice.paid"},
            False,
            "failed at `$.body.type eq invoice.paid`: saw 'payment_intent.succeeded'",
        ),
        ({"path": "$.body.amount", "op": "gt", "value_path": "$.body.limit"}, True, None),
        ({"path": "$.body.amount_text", "op": "eq", "value_path": "$.body.amount"}, True, None),
        (
            {"path": "$.body.limit", "op": "ge", "value_path": "$.body.amount"},
            False,
            "failed at `$.body.limit ge $.body.amount`: saw 1000; $.body.amount selected 1500",
        ),
        (
            {"path": "$.body.amount", "op": "eq", "value_path": "$.body.nope"},
            False,
            "failed at `$.body.amount eq $.body.nope`: nothing at $.body.nope",
        ),
        ({"path": "$.body.amount", "op": "ne", "value_path": "$.body.nope"}, True, None),
        (
            {"path": "$.body.items[*].qty", "op": "gt", "value": 3, "match": "all"},
            False,
            "failed at `$.body.items[*].qty gt 3 (match all)`: saw 2, 5",
        ),
        ({"path": "$.body.tags[*]", "op": "eq", "value": "BETA", "ignore_case": True}, True, None),
    ],
)
def test_predicate_outcomes(spec: dict[str, Any], matched: bool, reason: str | None) -> None:
    outcome = compile_condition(_pred(**spec)).evaluate(DOC)
    assert outcome.matched is matched
    assert outcome.reason == reason
    assert outcome.trace["result"] is matched
    assert outcome.trace["path"] == spec["path"]
    json.dumps(outcome.trace)


def test_predicate_trace_shape() -> None:
    trace = compile_condition(_pred(path="$.body.amount", op="gt", value=2000)).evaluate(DOC).trace
    assert trace == {"path": "$.body.amount", "op": "gt", "value": 2000, "seen": [1500],
                     "result": False}  # fmt: skip


def test_trace_truncates_seen_values_and_long_strings() -> None:
    doc = {"body": {"xs": list(range(20)), "long": "y" * 5000}}
    many = compile_condition(_pred(path="$.body.xs[*]", op="eq", value=-1)).evaluate(doc)
    assert many.trace["seen"] == [0, 1, 2, 3, 4]
    assert many.trace["seen_count"] == 20
    assert many.reason is not None and "(and 15 more)" in many.reason
    long = compile_condition(_pred(path="$.body.long", op="eq", value="x")).evaluate(doc)
    assert len(long.trace["seen"][0]) < 300
    assert long.reason is not None and len(long.reason) < 400


STRIPE_TREE = AllGroup.model_validate(
    {
        "all": [
            {"path": "$.body.type", "op": "eq", "value": "payment_intent.succeeded"},
            {"path": "$.body.amount", "op": "gt", "value": 1000},
            {
                "any": [
                    {"path": "$.body.currency", "op": "in", "value": ["usd", "eur"]},
                    {"not": {"path": "$.headers.x-test-mode", "op": "exists"}},
                ]
            },
        ]
    }
)


def _doc(amount: Any, currency: str | None, test_mode: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "payment_intent.succeeded", "amount": amount}
    if currency is not None:
        body["currency"] = currency
    return {"body": body, "headers": {"x-test-mode": "1"} if test_mode else {}}


@pytest.mark.parametrize(
    ("doc", "matched", "reason"),
    [
        (_doc(1500, "usd", True), True, None),
        (_doc("1500", "gbp", False), True, None),
        (_doc(10, "usd", False), False, "failed at `$.body.amount gt 1000`: saw 10"),
        (
            _doc(1500, "gbp", True),
            False,
            'no alternative matched: failed at `$.body.currency in ["usd", "eur"]`: '
            "saw 'gbp'; failed at `not $.headers.x-test-mode exists`: saw '1'",
        ),
        (
            _doc(1500, None, True),
            False,
            'no alternative matched: failed at `$.body.currency in ["usd", "eur"]`: '
            "nothing at that path; failed at `not $.headers.x-test-mode exists`: saw '1'",
        ),
    ],
)
def test_nested_tree_outcomes(doc: dict[str, Any], matched: bool, reason: str | None) -> None:
    outcome = compile_condition(STRIPE_TREE).evaluate(doc)
    assert (outcome.matched, outcome.reason) == (matched, reason)
    json.dumps(outcome.trace)


def test_all_short_circuits_and_marks_the_rest_skipped() -> None:
    trace = compile_condition(STRIPE_TREE).evaluate(_doc(10, "usd", False)).trace
    assert trace["result"] is False
    first, second, third = trace["all"]
    assert first["result"] is True
    assert second == {"path": "$.body.amount", "op": "gt", "value": 1000, "seen": [10],
                      "result": False}  # fmt: skip
    assert third == {"skipped": True, "condition": "any(2)"}


def test_any_short_circuits_and_not_wraps_its_child() -> None:
    trace = compile_condition(STRIPE_TREE).evaluate(_doc(1500, "gbp", False)).trace
    any_trace = trace["all"][2]
    assert any_trace["result"] is True
    assert any_trace["any"][0]["result"] is False
    assert any_trace["any"][1] == {
        "not": {"path": "$.headers.x-test-mode", "op": "exists", "seen": [], "result": False},
        "result": True,
    }
    skipped = compile_condition(STRIPE_TREE).evaluate(_doc(1500, "usd", True)).trace
    assert skipped["all"][2]["any"][1] == {
        "skipped": True,
        "condition": "not $.headers.x-test-mode exists",
    }


def test_not_of_a_group_explains_the_inner_match() -> None:
    tree = NotGroup.model_validate(
        {"not": {"any": [{"path": "$.body.flag", "op": "eq", "value": True}]}}
    )
    outcome = compile_condition(tree).evaluate(DOC)
    assert outcome.matched is False
    assert outcome.reason == "failed at `not any(1)`: the inner condition matched"
    double = NotGroup.model_validate({"not": {"not": {"path": "$.body.flag", "op": "exists"}}})
    assert compile_condition(double).evaluate(DOC).matched is True


def test_any_group_of_one_failing_predicate() -> None:
    tree = AnyGroup.model_validate({"any": [{"path": "$.query.token", "op": "eq", "value": "z"}]})
    outcome = compile_condition(tree).evaluate(DOC)
    assert outcome.reason == "no alternative matched: failed at `$.query.token eq z`: saw 'abc'"
