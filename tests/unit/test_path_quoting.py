"""Dotted names jsonpath-ng's lexer cannot read as names (its keyword ``where``, ``01``,
``1-2``, non-ASCII letters) are quoted before parsing (issue 13, item 1) — by a scanner
that skips strings, back-quoted operators and numbers, so filter literals keep their
meaning and invalid selectors stay invalid."""

from __future__ import annotations

from typing import Any

import pytest
from jsonpath_ng.ext import parse as jsonpath_ng_parse

from rules.errors import PathError
from rules.paths import compile_path

DOC: dict[str, Any] = {
    "body": {
        "where": [
            {"t": "x.y", "v": 1, "k": "a'b.c", "where": "w"},
            {"t": "x", "v": 2.5, "k": 'q"r', "where": "z"},
        ],
        "wherenot": {"a": 1},
        "a": {"1-2": [7], "01": "zero-one", "1": "one", "ключ": ["u"], "@type": ["t"]},
    },
}
ITEMS = DOC["body"]["where"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # the cases: a string literal with a dot, a float literal
        ("$.body.where[?(@.t == 'x.y')]", [ITEMS[0]]),
        ('$.body.where[?(@.t == "x.y")]', [ITEMS[0]]),
        ("$.body.where[?(@.v > 1.5)]", [ITEMS[1]]),
        ("$.body.where[?(@.v < 2.5)].t", ["x.y"]),
        ("$.body.where[?(@.v >= -1.5 && @.v <= 2.5)].v", [1, 2.5]),
        # escaped quotes and dots inside literals
        (r"$.body.where[?(@.k == 'a\'b.c')].v", [1]),
        (r'$.body.where[?(@.k == "q\"r")].v', [2.5]),
        # a field named where inside the filter, and after ..
        ("$.body.where[?(@.where == 'w')].t", ["x.y"]),
        ("$.body..where[*].t", ["x.y", "x"]),
        ("$.body.wherenot.*", [1]),
        ("$.body.where[*].t", ["x.y", "x"]),
        ("$.body.where[-1:].v", [2.5]),
        # names jsonpath-ng lexes as numbers or not at all
        ("$.body.a.1-2[*]", [7]),
        ("$.body.a.01.`len`", [8]),
        ("$.body.a.ключ[*]", ["u"]),
        ("$.body.a.@type[*]", ["t"]),
        # a regex filter keeps its pattern (dots, quotes) untouched
        ("$.body.where[?(@.t =~ '^x\\.y$')].v", [1]),
        # back-quoted operators are not names
        ("$.body.where[0].t.`sub(/y$/, z.w)`", ["x.z.w"]),
    ],
)
def test_quoted_names_keep_literals(expr: str, expected: list[Any]) -> None:
    assert compile_path(expr).values(DOC) == expected


@pytest.mark.parametrize(
    "expr",
    [
        "$[?2.2]",  # the issue: a bare number is no filter (jsonpath-ng refuses it too)
        "$.body.where[?(@.v > 1.5.5)]",
        "$.body.where[?(@.t == 'x.y)]",  # unterminated string
        "$.a b",
        "$.body[",
        "$.body.where[?(@.t == 'a')",
        # a named operator's own refusals (DefintionInvalid, re.error) are PathErrors too
        "$.body.a.`split(,, x, -1)`",
        "$.body.a.`str(x)`",
        "$.body.a.`sub(x)`",
        "$.body.a.`sub(/[/, x)`",
        "$.body.a.`nope`",
    ],
)
def test_invalid_selectors_stay_refused(expr: str) -> None:
    with pytest.raises(PathError) as info:
        compile_path(expr)
    assert repr(expr) in str(info.value)


def test_refusal_reports_jsonpath_ngs_reason_for_the_text_as_written() -> None:
    with pytest.raises(PathError) as info:
        compile_path("$[?2.2]")
    with pytest.raises(Exception) as theirs:
        jsonpath_ng_parse("$[?2.2]")
    assert str(theirs.value) in str(info.value)


def test_where_filter_matches_like_jsonpath_ng_on_the_quoted_form() -> None:
    expr = "$.body.where[?(@.t == 'x.y')]"
    quoted = """$.body."where"[?(@.t == 'x.y')]"""
    theirs = [m.value for m in jsonpath_ng_parse(quoted).find(DOC)]
    assert theirs == [ITEMS[0]]
    assert compile_path(expr).values(DOC) == theirs
