"""Guards against hostile payloads and patterns: nothing a user or sender writes may
stall a worker. (A template that loops forever, through a real worker:
tests/integration/test_guards_worker.py.)"""

from __future__ import annotations

import time

import pytest

from rules.conditions import compile_condition
from rules.errors import RuleValidationError
from rules.schema import parse_rule


def rule_with(when: dict) -> dict:
    return {"name": "r", "source": "s", "when": when, "actions": [{"type": "delay",
                                                                    "seconds": 1}]}


def test_catastrophic_regex_runs_in_linear_time() -> None:
    spec = parse_rule(rule_with({"path": "$.body.text", "op": "regex", "value": "(a+)+$"}))
    cond = compile_condition(spec.when)  # type: ignore[arg-type]
    doc = {"body": {"text": "a" * 200_000 + "!"}}
    t0 = time.perf_counter()
    outcome = cond.evaluate(doc)
    elapsed = time.perf_counter() - t0
    assert outcome.matched is False
    assert elapsed < 1.0  # Python's re would backtrack for hours on this input


@pytest.mark.parametrize("pattern", [r"(a)\1", r"foo(?=bar)", r"(?<!x)y"])
def test_backtracking_only_patterns_are_refused_at_save(pattern: str) -> None:
    with pytest.raises(RuleValidationError) as info:
        parse_rule(rule_with({"path": "$.body.text", "op": "regex", "value": pattern}))
    text = str(info.value)
    assert "when.value" in text and "RE2" in text


def test_ignore_case_regex() -> None:
    spec = parse_rule(rule_with({"path": "$.body.t", "op": "regex", "value": "^PAY",
                                 "ignore_case": True}))
    assert compile_condition(spec.when).evaluate({"body": {"t": "payment"}}).matched  # type: ignore[arg-type]


@pytest.mark.parametrize("template", [
    '{{ range(10000)|join("a" * 100000) }}',
    '{{ ("a" * 1000000)|replace("a", "a" * 1000) }}',
    '{{ ("a" * 1000000).replace("a", "aaaa") }}',
    '{{ "x".join(["a" * 1000] * 2000) }}',
    '{{ "a".center(10 ** 8) }}',
])
def test_one_call_string_bombs_are_refused_before_they_run(template: str) -> None:
    from rules.errors import TemplateError
    from rules.templating import render_template

    t0 = time.perf_counter()
    with pytest.raises(TemplateError, match="too large"):
        render_template(template, {})
    assert time.perf_counter() - t0 < 0.5  # refused up front, not after building 1e9 chars


def test_ordinary_join_and_replace_still_work() -> None:
    from rules.templating import render_template

    assert render_template('{{ [1, 2, 3]|join(", ") }}', {}) == "1, 2, 3"
    assert render_template('{{ "a-b"|replace("-", "+") }}', {}) == "a+b"
    assert render_template('{{ "a-b".replace("-", "+") }}', {}) == "a+b"
