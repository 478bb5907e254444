"""Conditions that can never match are refused at save (issue 13, item 14): in the rule
model (so ``hookwise apply``, the API and the builder alike), with a message that names the
rule, the field, the condition's path and the likely fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from rules.errors import RuleValidationError
from rules.schema import parse_rule, parse_source

RULES = "/api/v1/rules"


def _rule(when: dict[str, Any]) -> dict[str, Any]:
    return {"name": "never", "source": "shop", "when": when,
            "actions": [{"id": "s", "type": "state", "key": "k", "set": {"x": 1}}]}


REFUSED: list[tuple[dict[str, Any], str, list[str]]] = [
    # condition, field, fragments of the message
    ({"path": "$.body.currency", "op": "eq", "value": ["usd", "eur"]}, "when.value",
     ["eq with a list compares to the whole list; did you mean `in`?", "$.body.currency"]),
    ({"path": "$.body.currency", "op": "ne", "value": ["usd"]}, "when.value",
     ["did you mean `nin`?"]),
    ({"path": "$.body.ref", "op": "startswith", "value": ["refs/heads/", "refs/tags/"]},
     "when.value", ["`$.body.ref startswith` tests text", "a list value never matches",
                    "regex"]),
    ({"path": "$.body.file", "op": "endswith", "value": True}, "when.value",
     ["a boolean value never matches"]),
    ({"path": "$.body.amount", "op": "gt", "value": True}, "when.value",
     ["`$.body.amount gt` with a boolean never matches", "did you mean `eq true`?"]),
    ({"path": "$.body.amount", "op": "le", "value": [1, 2]}, "when.value",
     ["a list never matches", "did you mean `in`"]),
    ({"path": "$.body.amount", "op": "ge", "value": {"a": 1}}, "when.value",
     ["a mapping never matches"]),
    ({"path": "$.body.id", "op": "regex", "value": 123}, "when.value",
     ["op 'regex' needs a string pattern", "quote it, e.g. '^123$'"]),
    ({"path": "$.body.id", "op": "regex", "value": ["a", "b"]}, "when.value",
     ["needs a string pattern", "^(a|b)$"]),
    ({"path": "$.body.note", "op": "empty", "value": ""}, "when",
     ["`$.body.note empty` takes no `value`", "remove `value`"]),
    ({"path": "$.body.note", "op": "exists", "value": 1}, "when",
     ["`$.body.note exists` takes no `value`", "use `eq`"]),
    ({"path": "$.body.note", "op": "nempty", "value_path": "$.body.x"}, "when",
     ["takes no `value`"]),
    ({"path": "$.body.country", "op": "in", "value": "usd"}, "when.value",
     ["needs a list value", "for one value use `eq`"]),
    ({"path": "$.body.amount", "op": "eq", "value": float("inf")}, "when.value",
     ["NaN and infinity are not numbers"]),
    ({"path": "$.body.amount", "op": "in", "value": [1, float("nan")]}, "when.value",
     ["NaN and infinity are not numbers"]),
    ({"all": [{"path": "$.body.a", "op": "exists"},
              {"not": {"path": "$.body.tags", "op": "eq", "value": ["x"]}}]},
     "when.all[1].not.value", ["did you mean `in`?"]),
]


@pytest.mark.parametrize(("when", "loc", "fragments"), REFUSED,
                         ids=[f"{c.get('op', 'group')}-{i}" for i, (c, _, _) in enumerate(REFUSED)])
def test_conditions_that_can_never_match_are_refused(when: dict[str, Any], loc: str,
                                                      fragments: list[str]) -> None:
    with pytest.raises(RuleValidationError) as info:
        parse_rule(_rule(when))
    [err] = info.value.errors
    assert err.loc == loc and err.rule == "rule 'never'"
    for fragment in fragments:
        assert fragment in err.message, err.message


ACCEPTED: list[dict[str, Any]] = [
    {"path": "$.body.currency", "op": "eq", "value": "usd"},
    {"path": "$.body.obj", "op": "eq", "value": {"a": 1}},     # whole mappings compare
    {"path": "$.body.flag", "op": "eq", "value": True},
    {"path": "$.body.currency", "op": "in", "value": ["usd", "eur"]},
    {"path": "$.body.ref", "op": "startswith", "value": "refs/heads/"},
    {"path": "$.body.n", "op": "startswith", "value": 12},     # numbers as text
    {"path": "$.body.amount", "op": "gt", "value": 1000},
    {"path": "$.body.day", "op": "gt", "value": "2026-01-01"},  # text orders too
    {"path": "$.body.id", "op": "regex", "value": "^1$"},
    {"path": "$.body.tags", "op": "contains", "value": ["a"]},  # a list member may be a list
    {"path": "$.body.note", "op": "empty"},
    {"path": "$.body.note", "op": "exists", "value": None},
    {"path": "$.body.amount", "op": "gt", "value_path": "$.body.limit"},
]


@pytest.mark.parametrize("when", ACCEPTED, ids=[c["op"] for c in ACCEPTED])
def test_conditions_that_can_match_are_accepted(when: dict[str, Any]) -> None:
    parse_rule(_rule(when))


# --- hookwise apply -------------------------------------------------------------------------


def test_apply_refuses_with_file_rule_field_path_and_fix(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HOOKWISE_DATABASE_URL", "HOOKWISE_REDIS_URL", "HOOKWISE_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOOKWISE_DATA_DIR", str(tmp_path / "data"))
    f = tmp_path / "rules.yaml"
    f.write_text("""\
sources:
  - slug: shop
rules:
  - name: eu-orders
    source: shop
    when:
      all:
        - {path: $.body.type, op: eq, value: order.paid}
        - {path: $.body.currency, op: eq, value: [usd, eur]}
    actions:
      - {id: s, type: state, key: k, set: {x: 1}}
""")
    res = CliRunner().invoke(main, ["apply", str(f)], catch_exceptions=False)
    assert res.exit_code != 0
    out = res.output
    assert str(f) in out and "rule 'eu-orders'" in out and "when.all[1].value" in out, out
    assert "eq with a list compares to the whole list; did you mean `in`?" in out
    assert "$.body.currency" in out
    listed = CliRunner().invoke(main, ["export"], catch_exceptions=False)
    assert "eu-orders" not in listed.output  # nothing was applied


# --- the API ----------------------------------------------------------------------------------


@pytest.fixture
def shop(rt):  # type: ignore[no-untyped-def]
    rt.catalog.save([parse_source({"slug": "shop"})], [])


def test_the_api_refuses_with_the_field_and_fix(api, shop) -> None:  # type: ignore[no-untyped-def]
    doc = _rule({"all": [{"path": "$.body.ref", "op": "startswith",
                          "value": ["refs/heads/", "refs/tags/"]},
                         {"path": "$.body.amount", "op": "gt", "value": True}]})
    for resp in (api.post(RULES, json=doc), api.put(f"{RULES}/never", json=doc)):
        assert resp.status_code == 422, resp.get_json()
        errors = {e["loc"]: e["message"] for e in resp.get_json()["errors"]}
        assert "`$.body.ref startswith` tests text" in errors["when.all[0].value"]
        assert "did you mean `eq true`?" in errors["when.all[1].value"]
        assert "when.all[0].value" in resp.get_json()["message"]
    assert api.get(RULES).get_json()["total"] == 0


# --- the builder shows the API's message beside the field --------------------------------------


@pytest.mark.slow
def test_the_builder_shows_the_message_beside_the_value(logged_in, live_server, rt, shop) -> None:  # type: ignore[no-untyped-def]
    page = logged_in
    page.goto(f"{live_server}/rules/new?source=shop")
    page.get_by_label("Name", exact=True).fill("eu-orders")
    page.locator("#rb-when > .rb-group").get_by_role("button", name="+ Condition").click()
    first = page.locator('#rb-when [data-loc="when.all[0]"]')
    first.get_by_label("Path", exact=True).fill("$.body.currency")
    first.get_by_label("Value", exact=True).fill('["usd", "eur"]')
    page.get_by_label("Add a step").select_option("webhook")
    hook = page.locator('[data-loc="actions[0]"]')
    if not hook.count():  # choosing the type may or may not add the step by itself
        page.get_by_role("button", name="+ Add step").click()
    hook.get_by_label("URL", exact=True).fill("https://example.test/x")
    hook.get_by_label("JSON to send").fill('{"order": 1}')
    page.get_by_role("button", name="Save rule").click()
    message = page.locator('#rb-when [data-loc="when.all[0]"] .rb-error-msg')
    message.wait_for()
    text = message.inner_text()
    assert "eq with a list compares to the whole list; did you mean `in`?" in text, text
    assert "$.body.currency" in text
    assert rt.catalog.get_rule("eu-orders") is None


# --- rules stored before these checks still load ---------------------------------------------


def test_a_rule_stored_before_the_checks_still_loads_and_runs(rt, shop) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import Session, select

    from engine.store.models import Rule

    rt.catalog.save([], [parse_rule({**_rule({"path": "$.body.currency", "op": "eq",
                                              "value": "usd"}), "name": "old-eq-list"}),
                         parse_rule({**_rule({"path": "$.body.currency", "op": "eq",
                                              "value": "usd"}), "name": "fine"})])
    with Session(rt.catalog.db) as s:  # as an older Hookwise saved it: eq with a list
        row = s.exec(select(Rule).where(Rule.name == "old-eq-list")).one()
        row.spec = {**row.spec, "when": {"path": "$.body.currency", "op": "eq",
                                         "value": ["usd", "eur"]}}
        s.add(row)
        s.commit()
    ruleset, _ = rt.catalog.ruleset()  # one old rule must not fail the whole rule set
    doc = {"body": {"currency": "usd"}, "headers": {}, "query": {}, "event": {}}
    results = {r.rule.name: r.matched for r in ruleset.match(doc, "shop")}
    assert results == {"fine": True, "old-eq-list": False}  # as before: the whole list
    with pytest.raises(RuleValidationError):  # saving it again is refused
        parse_rule(rt.catalog.get_rule("old-eq-list").spec)
