"""The operator edge-case tables (issue 13): every operator against every JSON type, booleans
versus numbers, unicode, numeric strings, missing paths and empty selections.

The same tables are in docs/conditions.md: ``test_the_docs_show_these_tables`` renders them
and fails if the docs differ, so the user docs cannot drift from what the engine does.
Regenerate the docs' tables with ``python tests/unit/test_operator_table.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from rules.condition_models import Predicate
from rules.conditions import compile_condition
from rules.operators import OPERATORS, as_number

DOCS = Path(__file__).resolve().parents[2] / "docs" / "conditions.md"

IC = {"ignore_case": True}
ALL = {"match": "all"}
IC_ALL = {"ignore_case": True, "match": "all"}

# (op, selected values, value, options, result, note)
Row = tuple[str, list[Any], Any, dict[str, Any], bool, str]
TABLE: list[Row] = [
    # eq: numbers and numeric strings compare as numbers; bools only equal bools
    ("eq", ["x"], "x", {}, True, ""),
    ("eq", ["X"], "x", {}, False, "case matters"),
    ("eq", ["X"], "x", IC, True, ""),
    ("eq", [10], "10", {}, True, "number vs numeric string"),
    ("eq", ["10"], "10.0", {}, True, "both numeric: compared as numbers"),
    ("eq", ["1e3"], 1000, {}, True, ""),
    ("eq", [1.5], 1.5, {}, True, ""),
    ("eq", ["007"], 7, {}, False, "a leading zero makes it text"),
    ("eq", ["007"], "7", {}, False, ""),
    ("eq", ["١٠"], 10, {}, False, "only ASCII digits are numbers"),
    ("eq", ["１０"], 10, {}, False, "fullwidth digits are text"),
    ("eq", ["1e400"], 10, {}, False, "overflows: not a number"),
    ("eq", ["1e400"], "1e400", {}, True, "two texts: equal as text"),
    ("eq", [True], 1, {}, False, "true is not 1"),
    ("eq", [1], True, {}, False, ""),
    ("eq", [0], False, {}, False, ""),
    ("eq", [True], True, {}, True, ""),
    ("eq", ["true"], True, {}, False, "the text true is not the boolean"),
    ("eq", [None], "null", {}, False, ""),
    ("eq", [{"a": 1}], {"a": 1}, {}, True, "whole mappings compare"),
    ("eq", [{"A": 1}], {"a": 1}, IC, True, "ignore_case folds mapping keys"),
    ("eq", ["straße"], "STRASSE", IC, True, "casefold: ß folds to ss"),
    ("eq", ["İstanbul"], "istanbul", IC, True, "dotted capital I folds to i"),
    ("eq", ["ς"], "Σ", IC, True, "final sigma"),
    ("eq", ["café"], "CAFE\u0301", IC, True, "é and e + combining accent"),
    ("eq", ["café"], "cafe\u0301", {}, False, "no normalisation without ignore_case"),
    ("eq", [], "x", {}, False, "nothing selected"),
    ("eq", ["a", "b"], "b", {}, True, "any: one value is enough"),
    ("eq", ["a", "b"], "b", ALL, False, "all: every value must"),
    ("eq", ["b", "b"], "b", ALL, True, ""),
    ("eq", [], "b", ALL, False, "all needs at least one value"),
    # ne: no selected value equals (match does not change it)
    ("ne", ["x"], "y", {}, True, ""),
    ("ne", ["x"], "x", {}, False, ""),
    ("ne", ["X"], "x", IC, False, ""),
    ("ne", [], "x", {}, True, "a missing path is ne anything"),
    ("ne", ["wip", "ready"], "wip", {}, False, "no value may equal"),
    ("ne", ["wip", "ready"], "wip", ALL, False, "match all: the same (every value is not wip)"),
    ("ne", ["ready", "done"], "wip", ALL, True, ""),
    ("ne", ["10"], "10.0", {}, False, ""),
    ("ne", [True], 1, {}, True, ""),
    ("ne", [None], "x", {}, True, ""),
    # gt ge lt le: numbers, else two texts lexicographically, else false
    ("gt", [1500], 1000, {}, True, ""),
    ("gt", ["1500"], 1000, {}, True, "numeric string"),
    ("gt", ["1500"], "999", {}, True, "both numeric: numerically"),
    ("gt", ["b"], "a", {}, True, "two texts: lexicographically"),
    ("gt", ["2026-01-02"], "2026-01-01", {}, True, "ISO dates order as text"),
    ("gt", ["abc"], 10, {}, False, "text vs number"),
    ("gt", [True], 0, {}, False, "booleans are not numbers"),
    ("gt", [None], 0, {}, False, ""),
    ("gt", [[5]], 1, {}, False, ""),
    ("gt", [{"a": 1}], 0, {}, False, ""),
    ("gt", ["１０"], 9, {}, False, "fullwidth digits are text"),
    ("gt", ["1e400"], 10, {}, False, "not a number"),
    ("gt", [10**20 + 1], 10**20, {}, True, "big integers compare exactly"),
    ("gt", [1, 5], 3, {}, True, ""),
    ("gt", [1, 5], 3, ALL, False, ""),
    ("gt", [], 0, {}, False, "nothing selected"),
    ("ge", [1000], 1000, {}, True, ""),
    ("ge", ["999.5"], 1000, {}, False, ""),
    ("le", ["1000.0"], 1000, {}, True, ""),
    ("lt", [-1], 0, {}, True, ""),
    ("lt", ["B"], "a", {}, True, "uppercase sorts first"),
    ("lt", ["B"], "a", IC, False, "folded: b is not before a"),
    # in / nin: the value is a list; a member eq the selected value
    ("in", ["usd"], ["usd", "eur"], {}, True, ""),
    ("in", ["USD"], ["usd"], IC, True, ""),
    ("in", [1], ["1"], {}, True, "eq's coercion"),
    ("in", [True], [1], {}, False, ""),
    ("in", [None], [None], {}, True, ""),
    ("in", [["usd"]], ["usd"], {}, False, "a list is not its member"),
    ("in", [], ["usd"], {}, False, ""),
    ("in", ["gbp", "usd"], ["usd"], {}, True, ""),
    ("in", ["gbp", "usd"], ["usd"], ALL, False, ""),
    ("nin", ["gbp"], ["usd", "eur"], {}, True, ""),
    ("nin", ["usd"], ["usd", "eur"], {}, False, ""),
    ("nin", ["USD"], ["usd"], IC, False, ""),
    ("nin", [], ["usd"], {}, True, ""),
    ("nin", ["gbp", "usd"], ["usd"], {}, False, ""),
    ("nin", ["gbp", "usd"], ["usd"], ALL, False, "match all: the same"),
    # contains / ncontains: substring, list member, mapping key
    ("contains", ["Ada Lovelace"], "love", {}, False, ""),
    ("contains", ["Ada Lovelace"], "love", IC, True, ""),
    ("contains", ["straße"], "SS", IC, True, ""),
    ("contains", ["order 1500"], 1500, {}, True, "a number is looked for as text"),
    ("contains", [["vip", "beta"]], "beta", {}, True, "list member"),
    ("contains", [["VIP"]], "vip", IC, True, ""),
    ("contains", [[1, 2]], "1", {}, True, "members compare like eq"),
    ("contains", [{"Deploy": True}], "Deploy", {}, True, "mapping key"),
    ("contains", [{"Deploy": True}], "deploy", {}, False, ""),
    ("contains", [{"Deploy": True}], "deploy", IC, True, "keys fold too"),
    ("contains", [123], "2", {}, False, "numbers have no substrings"),
    ("contains", [None], "x", {}, False, ""),
    ("contains", [True], "t", {}, False, ""),
    ("contains", [], "x", {}, False, ""),
    ("ncontains", [{"Deploy": True}], "deploy", IC, False, ""),
    ("ncontains", ["abc"], "b", {}, False, ""),
    ("ncontains", ["abc"], "x", {}, True, ""),
    ("ncontains", [], "x", {}, True, ""),
    ("ncontains", [["a"], ["b"]], "a", ALL, False, "no value may contain it"),
    # startswith / endswith: text (numbers as text)
    ("startswith", ["Payment"], "pay", {}, False, ""),
    ("startswith", ["Payment"], "pay", IC, True, ""),
    ("startswith", [12345], 12, {}, True, "numbers as text"),
    ("startswith", [True], "t", {}, False, "booleans are not text"),
    ("startswith", [None], "n", {}, False, ""),
    ("startswith", [["a"]], "a", {}, False, ""),
    ("startswith", ["STRASSE"], "straß", IC, True, ""),
    ("startswith", [], "a", {}, False, ""),
    ("startswith", ["ab", "xb"], "a", ALL, False, ""),
    ("endswith", ["invoice.PDF"], ".pdf", IC, True, ""),
    ("endswith", ["invoice.PDF"], ".pdf", {}, False, ""),
    ("endswith", [1500], "00", {}, True, ""),
    # regex: RE2 search; ignore_case is RE2's flag (simple case folding)
    ("regex", ["ORDER-1"], "^order", IC, True, ""),
    ("regex", ["order-1"], "^ORDER", {}, False, ""),
    ("regex", ["ς"], "Σ", IC, True, ""),
    ("regex", ["Straße"], "STRASSE", IC, False, "RE2 does not fold ß to ss"),
    ("regex", [123], "^1", {}, True, "numbers as text"),
    ("regex", [True], "true", {}, False, ""),
    ("regex", [None], ".*", {}, False, ""),
    ("regex", [{"a": 1}], "a", {}, False, ""),
    ("regex", ["a1", "b"], "\\d", {}, True, ""),
    ("regex", ["a1", "b"], "\\d", ALL, False, ""),
    ("regex", ["١"], "^\\d$", {}, False, "RE2's \\d is ASCII"),
    ("regex", [], ".*", {}, False, ""),
    # exists / nexists: selected anything (even null)
    ("exists", ["x"], None, {}, True, ""),
    ("exists", [None], None, {}, True, "null is there"),
    ("exists", [""], None, {}, True, ""),
    ("exists", [], None, {}, False, ""),
    ("nexists", [], None, {}, True, ""),
    ("nexists", [None], None, {}, False, ""),
    # empty / nempty: nothing, null, "", [] or {}
    ("empty", [], None, {}, True, "nothing selected"),
    ("empty", [None], None, {}, True, ""),
    ("empty", [""], None, {}, True, ""),
    ("empty", [[]], None, {}, True, ""),
    ("empty", [{}], None, {}, True, ""),
    ("empty", [0], None, {}, False, ""),
    ("empty", [False], None, {}, False, ""),
    ("empty", [" "], None, {}, False, ""),
    ("empty", ["", "x"], None, {}, True, ""),
    ("empty", ["", "x"], None, ALL, False, ""),
    ("nempty", ["x"], None, {}, True, ""),
    ("nempty", [0], None, {}, True, ""),
    ("nempty", [], None, {}, False, ""),
    ("nempty", ["", "x"], None, {}, False, "no value may be empty"),
    ("nempty", ["", "x"], None, ALL, False, "match all: the same"),
]


def _cell(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|")


def _options(options: dict[str, Any]) -> str:
    parts = ["ignore_case" if k == "ignore_case" else f"{k}: {v}" for k, v in options.items()]
    return ", ".join(parts)


def _id(row: Row) -> str:
    op, seen, value, options, _, _ = row
    return f"{op}-{_cell(seen)}-{_cell(value)}-{_options(options)}"


@pytest.mark.parametrize("row", TABLE, ids=[_id(r) for r in TABLE])
def test_operator_table(row: Row) -> None:
    op, seen, value, options, expected, _ = row
    assert OPERATORS[op].apply(seen, value, **options) is expected


def test_every_operator_has_rows() -> None:
    assert {r[0] for r in TABLE} == set(OPERATORS)


# --- numeric coercion ----------------------------------------------------------------------

NOT_A_NUMBER = "not a number"
COERCION: list[tuple[Any, Any, str]] = [
    (10, 10, ""),
    (1.5, 1.5, ""),
    ("10", 10, ""),
    ("-3.5", -3.5, ""),
    ("1e3", 1000.0, "exponents are fine"),
    ("0.5", 0.5, ""),
    ("0", 0, ""),
    ("-0", 0, ""),
    ("12345678901234567890", 12345678901234567890, "integers are exact"),
    (".5", NOT_A_NUMBER, "JSON needs the 0"),
    ("5.", NOT_A_NUMBER, ""),
    ("+1", NOT_A_NUMBER, "no plus sign"),
    (" 1", NOT_A_NUMBER, "no spaces"),
    ("1_000", NOT_A_NUMBER, ""),
    ("007", NOT_A_NUMBER, "leading zeros: a code, not a number"),
    ("0x10", NOT_A_NUMBER, ""),
    ("١٠", NOT_A_NUMBER, "Arabic-Indic digits"),
    ("１０", NOT_A_NUMBER, "fullwidth digits"),
    ("²", NOT_A_NUMBER, "superscript two"),
    ("1e400", NOT_A_NUMBER, "overflows to infinity"),
    ("-1e400", NOT_A_NUMBER, ""),
    ("nan", NOT_A_NUMBER, ""),
    ("Infinity", NOT_A_NUMBER, ""),
    (True, NOT_A_NUMBER, "booleans are never numbers"),
    (None, NOT_A_NUMBER, ""),
]


@pytest.mark.parametrize(("value", "number", "note"), COERCION,
                         ids=[repr(v) for v, _, _ in COERCION])
def test_numeric_coercion(value: Any, number: Any, note: str) -> None:
    got = as_number(value)
    if number == NOT_A_NUMBER:
        assert got is None
    else:
        assert got == number and type(got) is type(number)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_floats_are_not_numbers(value: float) -> None:
    assert as_number(value) is None
    assert OPERATORS["eq"].apply([value], value) is False
    assert OPERATORS["gt"].apply([value], 0) is False


# --- missing paths and empty selections, through compiled conditions -----------------------

DOC = {"body": {"tags": [], "name": None, "n": 0}}
WHERE = {"missing path": "$.body.missing", "empty selection": "$.body.tags[*]",
         "null": "$.body.name"}  # fmt: skip
SELECTIONS: dict[str, tuple[Any, tuple[bool, bool, bool]]] = {
    # op: (value, (missing path, empty selection, null))
    "eq": ("x", (False, False, False)),
    "ne": ("x", (True, True, True)),
    "gt": (0, (False, False, False)),
    "ge": (0, (False, False, False)),
    "lt": (0, (False, False, False)),
    "le": (0, (False, False, False)),
    "in": (["x"], (False, False, False)),
    "nin": (["x"], (True, True, True)),
    "contains": ("x", (False, False, False)),
    "ncontains": ("x", (True, True, True)),
    "startswith": ("x", (False, False, False)),
    "endswith": ("x", (False, False, False)),
    "regex": (".*", (False, False, False)),
    "exists": (None, (False, False, True)),
    "nexists": (None, (True, True, False)),
    "empty": (None, (True, True, True)),
    "nempty": (None, (False, False, False)),
}


@pytest.mark.parametrize("op", list(SELECTIONS))
@pytest.mark.parametrize("match", ["any", "all"])
def test_missing_paths_and_empty_selections(op: str, match: str) -> None:
    value, expected = SELECTIONS[op]
    for (label, path), want in zip(WHERE.items(), expected, strict=True):
        spec: dict[str, Any] = {"path": path, "op": op, "match": match}
        if value is not None:
            spec["value"] = value
        condition = compile_condition(Predicate.model_validate(spec))
        outcome = condition.evaluate(DOC)
        assert outcome.matched is want, (label, match)
        assert condition.test(DOC) is want, (label, match)


# --- value_path selecting several values: match counts on both sides ------------------------

VP_DOC = {"body": {"v": "y", "allowed": ["x", "y"], "n": 7, "limits": [5, 10],
                   "ns": [6, 7], "none": []}}
VALUE_PATHS: list[tuple[str, str, str, str, bool]] = [
    # path, op, value_path, match, result
    ("$.body.v", "in", "$.body.allowed[*]", "any", True),   # the values found are the list
    ("$.body.v", "nin", "$.body.allowed[*]", "any", False),
    ("$.body.v", "in", "$.body.allowed", "any", True),       # one value that is a list
    ("$.body.v", "eq", "$.body.allowed[*]", "any", True),    # some pair equal
    ("$.body.v", "eq", "$.body.allowed[*]", "all", False),   # every pair equal
    ("$.body.v", "ne", "$.body.allowed[*]", "any", False),   # no pair equal
    ("$.body.v", "ne", "$.body.allowed[*]", "all", False),
    ("$.body.n", "lt", "$.body.limits[*]", "any", True),     # 7 < 10
    ("$.body.n", "lt", "$.body.limits[*]", "all", False),    # not 7 < 5
    ("$.body.n", "gt", "$.body.limits[*]", "all", False),    # not 7 > 10
    ("$.body.ns[*]", "gt", "$.body.limits[*]", "any", True),  # 6 > 5
    ("$.body.ns[*]", "ge", "$.body.limits[0]", "all", True),  # 6, 7 >= 5
    ("$.body.n", "eq", "$.body.none[*]", "any", False),      # nothing there: positive false
    ("$.body.n", "ne", "$.body.none[*]", "any", True),       # ... negative true
]


@pytest.mark.parametrize(("path", "op", "value_path", "match", "expected"), VALUE_PATHS)
def test_value_path_with_several_values(path: str, op: str, value_path: str, match: str,
                                        expected: bool) -> None:
    spec = Predicate.model_validate({"path": path, "op": op, "value_path": value_path,
                                     "match": match})
    condition = compile_condition(spec)
    assert condition.evaluate(VP_DOC).matched is expected
    assert condition.test(VP_DOC) is expected


def test_a_value_path_miss_shows_both_sides() -> None:
    spec = Predicate.model_validate({"path": "$.body.n", "op": "gt",
                                     "value_path": "$.body.limits[*]", "match": "all"})
    outcome = compile_condition(spec).evaluate(VP_DOC)
    assert outcome.reason == ("failed at `$.body.n gt $.body.limits[*] (match all)`: saw 7; "
                              "$.body.limits[*] selected 5, 10")
    assert outcome.trace["seen"] == [7]
    assert outcome.trace["value_seen"] == [5, 10]
    assert outcome.trace["value"] == [5, 10]


def test_a_single_value_path_value_is_shown_as_it_is() -> None:
    spec = Predicate.model_validate({"path": "$.body.n", "op": "gt",
                                     "value_path": "$.body.limits[1]"})
    outcome = compile_condition(spec).evaluate(VP_DOC)
    assert outcome.reason == ("failed at `$.body.n gt $.body.limits[1]`: saw 7; "
                              "$.body.limits[1] selected 10")
    assert outcome.trace["value"] == 10


# --- the docs ------------------------------------------------------------------------------


def render_tables() -> dict[str, str]:
    """The docs' tables as markdown, by name."""
    ops = ["| op | selected values | value | options | result | why |",
           "| --- | --- | --- | --- | --- | --- |"]
    for op, seen, value, options, result, note in TABLE:
        shown = "" if value is None and not OPERATORS[op].needs_value else f"`{_cell(value)}`"
        ops.append(f"| `{op}` | `{_cell(seen)}` | {shown} | {_options(options)} | "
                   f"{'true' if result else 'false'} | {note} |")
    numbers = ["| value | as a number | why |", "| --- | --- | --- |"]
    for value, number, note in COERCION:
        shown = number if number == NOT_A_NUMBER else f"`{_cell(number)}`"
        numbers.append(f"| `{_cell(value)}` | {shown} | {note} |")
    where = ["| op | " + " | ".join(WHERE) + " |", "| --- |" + " --- |" * len(WHERE)]
    for op, (value, results) in SELECTIONS.items():
        head = f"`{op}`" + (f" `{_cell(value)}`" if value is not None else "")
        where.append(f"| {head} | " + " | ".join("true" if r else "false" for r in results)
                     + " |")
    return {"operators": "\n".join(ops), "numbers": "\n".join(numbers),
            "selections": "\n".join(where)}


def _marks(name: str) -> tuple[str, str]:
    return f"<!-- table:{name} -->", f"<!-- /table:{name} -->"


def test_the_docs_show_these_tables() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name, table in render_tables().items():
        start, end = _marks(name)
        assert start in text and end in text, f"docs/conditions.md lacks the {name} table"
        shown = text.split(start, 1)[1].split(end, 1)[0].strip("\n")
        assert shown == table, (f"docs/conditions.md's {name} table differs from the tests; "
                                "run python tests/unit/test_operator_table.py")


if __name__ == "__main__":  # rewrite the tables in docs/conditions.md
    text = DOCS.read_text(encoding="utf-8")
    for name, table in render_tables().items():
        start, end = _marks(name)
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = f"{before}{start}\n{table}\n{end}{after}"
    DOCS.write_text(text, encoding="utf-8")
