"""Regexes inside JSONPath paths (``=~`` filters, `` `sub()` ``) run on RE2: a
catastrophic-backtracking pattern on a hostile value stays fast, ordinary filters match the
same items as before, and a pattern RE2 cannot compile is refused when the path compiles."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from jsonpath_ng.ext import parse as jsonpath_ng_parse
from pydantic import ValidationError

from rules.conditions import compile_condition
from rules.errors import PathError
from rules.paths import compile_path
from rules.schema import Predicate

EVIL = '$.body.items[?(@.k =~ "^(a+)+$")]'
HOSTILE = "a" * 34 + "!"  # Python's re needs ~2**34 steps to reject this


@contextmanager
def under_one_second() -> Iterator[None]:
    """Fail (rather than hang for minutes) when the body takes a second or more."""

    def alarm(*_: Any) -> None:
        raise TimeoutError("regex evaluation ran for over 1 s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 1.0


def _doc(*values: Any) -> dict[str, Any]:
    return {"body": {"items": [{"k": v} for v in values]}}


def test_catastrophic_filter_pattern_is_linear_in_compile_path() -> None:
    doc = _doc(HOSTILE, "aaaa", 7, None)
    with under_one_second():
        assert compile_path(EVIL).values(doc) == [{"k": "aaaa"}]


def test_catastrophic_filter_pattern_is_linear_in_rule_matching() -> None:
    cond = compile_condition(Predicate.model_validate({"path": EVIL, "op": "exists"}))
    with under_one_second():
        outcome = cond.evaluate(_doc(HOSTILE))
    assert not outcome.matched
    assert cond.evaluate(_doc(HOSTILE, "aaa")).matched


def test_catastrophic_pattern_nested_in_a_boolean_filter_is_linear() -> None:
    path = '$.body.items[?(@.n == 1 && @.k =~ "^(a+)+$")]'
    doc = {"body": {"items": [{"n": 1, "k": HOSTILE}, {"n": 1, "k": "aa"}]}}
    with under_one_second():
        assert compile_path(path).values(doc) == [{"n": 1, "k": "aa"}]


def test_catastrophic_sub_pattern_is_linear() -> None:
    with under_one_second():
        assert compile_path("$.body.v.`sub(/^(a+)+$/, x)`").values({"body": {"v": HOSTILE}}) == []
    assert compile_path("$.body.v.`sub(/^(a+)+$/, x)`").values({"body": {"v": "aaa"}}) == ["x"]


@pytest.mark.parametrize(
    "path",
    [
        '$.body.items[?(@.k =~ "^ord")]',
        '$.body.items[?(@.k =~ "paid$")]',
        '$.body.items[?(@.k =~ "[0-9]+")]',
        '$.body.items[?(@.k =~ "(?i)ORDER")]',
        '$.body.items[?(@.k =~ "a|z")]',
        '$.body.items[?(@.k =~ "^$")]',
        '$.body.items[?(@.k =~ "é")]',
        '$.body.items[?(@.k =~ "x")].k',
        '$..[?(@.k =~ "paid")].k',
        '$.body.items[?(@.k =~ "paid" && @.n > 1)]',
    ],
)
def test_ordinary_filters_select_what_python_re_selected(path: str) -> None:
    doc = {"body": {"items": [
        {"k": "order.paid", "n": 2}, {"k": "order.refunded", "n": 3}, {"k": "ORDER-42"},
        {"k": ""}, {"k": "café"}, {"k": 12}, {"k": None}, {"k": True}, {"k": ["paid"]},
        {"n": 9}, {"k": "xyz"},
    ]}}
    expected = [m.value for m in jsonpath_ng_parse(path).find(doc)]
    assert expected, "the case should select something"
    assert compile_path(path).values(doc) == expected


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (r'$.body.items[?(@.k =~ "(a)\\1")]', "back-references"),
        ('$.body.items[?(@.k =~ "a(?=b)")]', "look-around"),
        ('$.body.items[?(@.k =~ "(")]', "missing"),
        ("$.body.items[?(@.k =~ 5)]", "must be a quoted string"),
        ("$.body.v.`sub(/a(?!b)/, x)`", "look-around"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_naming_the_path(path: str, fragment: str) -> None:
    with pytest.raises(PathError) as err:
        compile_path(path)
    message = str(err.value)
    assert repr(path) in message and fragment in message


def test_a_rule_with_a_backreference_filter_is_refused_at_save() -> None:
    path = r'$.body.items[?(@.k =~ "(a)\\1")]'
    with pytest.raises(ValidationError) as err:
        Predicate.model_validate({"path": path, "op": "exists"})
    assert "back-references" in str(err.value) and "=~" in str(err.value)
