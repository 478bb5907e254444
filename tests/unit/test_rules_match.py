"""The matcher: ordering, sources, stop, the equality index, compiled steps, starter files."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from rules.compiled import CompiledRule, compile_rule
from rules.conditions import compile_condition
from rules.document import build_event_document
from rules.match import MatchResult, RuleSet
from rules.schema import RuleSpec, load_rule_file, parse_rule

TEMPLATES = Path(__file__).resolve().parents[2] / "rules" / "templates"
NOOP = [{"type": "delay", "seconds": 0}]


def _rule(name: str, when: dict[str, Any] | None = None, **fields: Any) -> RuleSpec:
    data: dict[str, Any] = {"name": name, "source": "shop", "actions": NOOP} | fields
    if when is not None:
        data["when"] = when
    return parse_rule(data)


def _doc(body: Any, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return build_event_document(body, headers or {}, {}, {"id": "e1", "source": "shop"})


def _eq(path: str, value: Any) -> dict[str, Any]:
    return {"path": path, "op": "eq", "value": value}


def _by_name(results: list[MatchResult]) -> dict[str, MatchResult]:
    return {r.rule.name: r for r in results}


def test_build_event_document_lowercases_header_names() -> None:
    doc = build_event_document(
        {"a": 1}, {"X-Test-Mode": "1", "Content-Type": "application/json"}, {"page": "2"},
        {"id": "e1", "source": "shop", "received_at": "2024-01-01T00:00:00Z"},
    )  # fmt: skip
    assert doc == {
        "body": {"a": 1},
        "headers": {"x-test-mode": "1", "content-type": "application/json"},
        "query": {"page": "2"},
        "event": {"id": "e1", "source": "shop", "received_at": "2024-01-01T00:00:00Z"},
    }
    assert build_event_document("raw", None, None, None)["headers"] == {}


def test_considers_enabled_rules_of_the_source_and_wildcard_in_priority_then_name_order() -> None:
    rules = [
        _rule("b-low", priority=-1),
        _rule("z-high", priority=5),
        _rule("a-mid"),
        _rule("c-mid", source="*"),
        _rule("other-source", source="crm", priority=100),
        _rule("disabled", enabled=False, priority=100),
    ]
    ruleset = RuleSet(rules, version=7)
    assert ruleset.version == 7
    assert len(ruleset.rules) == 6 and all(isinstance(r, CompiledRule) for r in ruleset.rules)
    results = ruleset.match(_doc({}), "shop")
    assert [r.rule.name for r in results] == ["z-high", "a-mid", "c-mid", "b-low"]
    assert all(r.matched and r.reason is None for r in results)
    assert [r.rule.name for r in ruleset.match(_doc({}), "crm")] == ["other-source", "c-mid"]
    assert [r.rule.name for r in ruleset.match(_doc({}), "unknown")] == ["c-mid"]


def test_stop_skips_every_later_rule() -> None:
    ruleset = RuleSet(
        [
            _rule("first", _eq("$.body.kind", "x"), priority=10, stop=True),
            _rule("same-priority-later-name", priority=10),
            _rule("lower", priority=1),
            _rule("before-stop", priority=20, stop=False),
        ]
    )
    results = ruleset.match(_doc({"kind": "x"}), "shop")
    assert [(r.rule.name, r.matched) for r in results] == [
        ("before-stop", True),
        ("first", True),
        ("same-priority-later-name", False),
        ("lower", False),
    ]
    assert results[3].reason == "not evaluated: rule 'first' matched with stop: true"
    # a stop rule that does not match stops nothing
    assert all(
        r.matched for r in ruleset.match(_doc({"kind": "y"}), "shop") if r.rule.name != "first"
    )


def test_index_excludes_rules_without_evaluating_them() -> None:
    rules = [_rule(f"r{i:03d}", _eq("$.body.type", f"type-{i}")) for i in range(200)]
    ruleset = RuleSet(rules)
    calls: list[str] = []
    for compiled in ruleset.rules:
        assert compiled.condition is not None
        original = compiled.condition.evaluate

        def counting(doc: dict[str, Any], _name: str = compiled.name, _f: Any = original) -> Any:
            calls.append(_name)
            return _f(doc)

        compiled.condition.evaluate = counting  # type: ignore[method-assign]
    results = _by_name(ruleset.match(_doc({"type": "type-42"}), "shop"))
    assert calls == ["r042"]
    assert results["r042"].matched is True
    excluded = results["r007"]
    assert excluded.matched is False
    assert excluded.reason == "failed at `$.body.type eq type-7`: saw 'type-42'"
    assert excluded.trace == {"path": "$.body.type", "op": "eq", "value": "type-7",
                              "seen": ["type-42"], "result": False}  # fmt: skip
    missing = _by_name(ruleset.match(_doc({}), "shop"))["r001"]
    assert missing.reason == "failed at `$.body.type eq type-1`: nothing at that path"


def test_index_on_an_all_child_keeps_the_trace_shape() -> None:
    ruleset = RuleSet(
        [
            _rule(
                "grouped",
                {
                    "all": [
                        {"path": "$.body.n", "op": "gt", "value": 1},
                        {"path": "$.body.kind", "op": "in", "value": ["a", "b"]},
                    ]
                },
            )  # fmt: skip
        ]
    )
    (result,) = ruleset.match(_doc({"n": 5, "kind": "c"}), "shop")
    assert result.matched is False
    assert result.reason == 'failed at `$.body.kind in ["a", "b"]`: saw \'c\''
    assert result.trace["result"] is False
    assert result.trace["all"][0] == {"skipped": True, "condition": "$.body.n gt 1"}
    assert result.trace["all"][1]["seen"] == ["c"]
    json.dumps(result.trace)


@pytest.mark.parametrize(
    ("rule_value", "seen", "matched"),
    [
        (1000, "1000", True),
        ("1000", 1000, True),
        ("1000", 1000.0, True),
        (1000, "1e3", True),
        ("1000", "1e3", True),  # both numeric: compared as numbers
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        ("x", ["x"], False),  # a list is not equal to its member
        (2**70, 2**70, True),
    ],
)
def test_index_follows_eq_coercion(rule_value: Any, seen: Any, matched: bool) -> None:
    ruleset = RuleSet([_rule("r", _eq("$.body.v", rule_value))])
    (result,) = ruleset.match(_doc({"v": seen}), "shop")
    assert result.matched is matched
    naive = compile_condition(ruleset.rules[0].spec.when).evaluate(_doc({"v": seen}))  # type: ignore[arg-type]
    assert naive.matched is matched


# --- index versus naive evaluation ---------------------------------------------------------

POOL: list[Any] = ["a", "b", "A", 1, 2, "1", "2", "1.0", 1.0, True, False, "true", 0, "0", None]
PATHS = ["$.body.type", "$.body.n", "$.headers.x", "$['body']['type']", "$.body.list[*]",
         "$.body.list[0]", "$.body.missing"]  # fmt: skip


def _random_predicate(rng: random.Random) -> dict[str, Any]:
    path = rng.choice(PATHS)
    op = rng.choice(["eq", "eq", "eq", "in", "in", "ne", "nin", "gt", "exists", "nexists",
                     "empty", "contains"])  # fmt: skip
    pred: dict[str, Any] = {"path": path, "op": op}
    if op == "in" or op == "nin":
        pred["value"] = rng.sample([v for v in POOL if v is not None], rng.randint(1, 3))
    elif op not in ("exists", "nexists", "empty"):  # gt true can never match: refused at save
        pred["value"] = rng.choice([v for v in POOL if v is not None
                                    and not (op == "gt" and isinstance(v, bool))])
    if op in ("eq", "in") and rng.random() < 0.15:
        pred["ignore_case"] = True
    if rng.random() < 0.1:
        pred["match"] = "all"
    if op == "eq" and rng.random() < 0.1:
        del pred["value"]
        pred["value_path"] = rng.choice(PATHS)
    return pred


def _random_condition(rng: random.Random, depth: int = 0) -> dict[str, Any] | None:
    roll = rng.random()
    if depth == 0 and roll < 0.05:
        return None
    if depth >= 2 or roll < 0.5:
        return _random_predicate(rng)
    if roll < 0.8:
        return {"all": [_random_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if roll < 0.92:
        return {"any": [_random_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    return {"not": _random_condition(rng, depth + 1)}


def _random_event(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key in ("type", "n"):
        if rng.random() < 0.85:
            body[key] = rng.choice(POOL)
    if rng.random() < 0.5:
        body["list"] = rng.sample(POOL, rng.randint(0, 3))
    if rng.random() < 0.1:
        body["type"] = ["a", 1]
    headers = {"X": rng.choice(POOL)} if rng.random() < 0.7 else {}
    return _doc(body, headers)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_gives_the_same_answers_as_naive_evaluation(seed: int) -> None:
    rng = random.Random(seed)
    specs = [
        _rule(f"rule-{i:03d}", _random_condition(rng), priority=rng.randint(0, 3),
              source=rng.choice(["shop", "*"]))
        for i in range(300)
    ]  # fmt: skip
    ruleset = RuleSet(specs)
    naive_conditions = {s.name: compile_condition(s.when) if s.when else None for s in specs}
    indexed = sum(1 for i in range(300) if i in ruleset._group("shop").entries)
    assert indexed > 50  # the random rules really exercise the index
    for _ in range(40):
        doc = _random_event(rng)
        results = ruleset.match(doc, "shop")
        assert len(results) == 300
        for result in results:
            condition = naive_conditions[result.rule.name]
            naive = True if condition is None else condition.evaluate(doc).matched
            assert result.matched is naive, (result.rule.spec.when, doc, result.reason)
            assert (result.reason is None) is result.matched
            json.dumps(result.trace)
        # the fast mode (no explanations) picks exactly the rules that match
        fast = ruleset.match(doc, "shop", explain_excluded=False)
        assert {r.rule.name for r in fast} == {r.rule.name for r in results if r.matched}
        assert all(r.matched for r in fast)


# --- compiled steps and starter files ------------------------------------------------------


def test_compiled_steps_use_yaml_field_names_and_render() -> None:
    rule = compile_rule(
        _rule(
            "steps",
            actions=[
                {"id": "notify", "type": "webhook", "url": "https://x/{{ body.id }}",
                 "json": {"n": "{{ body.n }}"}, "retry": {"max_attempts": 2},
                 "when": _eq("$.body.kind", "a"), "on_error": "continue"},
                {"type": "email", "to": "{{ body.email }}", "from": "me@x", "subject": "s",
                 "text": "got {{ steps.notify.json.id }}"},
            ],
        )
    )  # fmt: skip
    notify, email = rule.steps
    assert (notify.id, notify.type, email.id, email.type) == ("notify", "webhook", "step2", "email")
    assert notify.when is not None and notify.when.evaluate(_doc({"kind": "a"})).matched
    assert email.when is None
    context = _doc({"id": 7, "n": 3, "email": "a@x"}) | {"steps": {"notify": {"json": {"id": 9}}}}
    rendered = notify.render(context)
    assert rendered["url"] == "https://x/7" and rendered["json"] == {"n": 3}
    assert rendered["method"] == "POST" and rendered["timeout_s"] == 10
    assert not {"id", "type", "when", "on_error", "retry", "json_", "body", "sign"} & set(rendered)
    mail = email.render(context)
    assert mail["from"] == "me@x" and mail["to"] == "a@x" and mail["text"] == "got 9"
    assert "from_" not in mail and "cc" not in mail and "html" not in mail


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.yaml")), ids=lambda p: p.name)
def test_starter_rules_match_their_sample(path: Path) -> None:
    """Every starter matches its own sample (with its headers, where the provider matches
    on one). Rendering is checked by `hookwise test` (tests/test_cli.py) and end to end
    by tests/test_starters.py."""
    parsed = load_rule_file(path)
    body = json.loads(path.with_name(path.stem + ".sample.json").read_text())
    hfile = path.with_name(path.stem + ".headers.json")
    headers = {k.lower(): v for k, v in json.loads(hfile.read_text()).items()} \
        if hfile.exists() else {}
    ruleset = RuleSet(parsed.rules)
    source = parsed.sources[0].slug
    event = {"id": "evt_1", "source": source, "received_at": "2024-04-12T09:31:08Z"}
    results = ruleset.match(build_event_document(body, headers, {}, event), source)
    assert results and all(r.matched for r in results), [r.reason for r in results]


def test_starter_rules_do_not_match_an_unrelated_event() -> None:
    for path in sorted(TEMPLATES.glob("*.yaml")):
        parsed = load_rule_file(path)
        source = parsed.sources[0].slug
        results = RuleSet(parsed.rules).match(_doc({"type": "ping"}), source)
        assert results and not any(r.matched for r in results)
        assert all(r.reason for r in results)
