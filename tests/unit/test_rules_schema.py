"""The rule format: valid documents, collected error messages, YAML loading, round trips."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from rules.errors import FieldError, RuleValidationError
from rules.schema import (
    AllGroup,
    DedupSpec,
    EmailStep,
    NotGroup,
    Predicate,
    RuleFile,
    RuleSpec,
    SourceSpec,
    VerifySpec,
    WebhookStep,
    dump_rule,
    dump_source,
    load_rule_file,
    parse_rule,
    parse_rule_file,
    parse_source,
)

SPEC_EXAMPLE = """
sources:
  - slug: stripe
    verify: {scheme: stripe, secret: STRIPE_WHSEC}
    dedup: {header: Stripe-Event-Id}
    respond: {mode: immediate}
rules:
  - name: big-payment-to-chat
    source: stripe
    enabled: true
    priority: 0
    stop: false
    when:
      all:
        - {path: $.body.type, op: eq, value: payment_intent.succeeded}
        - {path: $.body.data.object.amount, op: gt, value: 1000}
        - any:
            - {path: $.body.data.object.currency, op: in, value: [usd, eur]}
            - not: {path: $.headers.x-test-mode, op: exists}
    actions:
      - id: notify
        type: webhook
        method: POST
        url: "https://chat.example/api/post?channel={{ secrets.CHANNEL }}"
        headers: {Authorization: "Bearer {{ secrets.CHAT_TOKEN }}"}
        json:
          text: "Paid {{ body.data.object.amount / 100 }} {{ body.data.object.currency | upper }}"
        sign: {scheme: standard, secret: OUT_SIGNING}
        retry: {max_attempts: 6, backoff: exponential, initial_s: 2, max_s: 3600}
        timeout_s: 10
      - id: save
        type: db_write
        connection: default
        table: payments
        mode: upsert
        key: [payment_id]
        values: {payment_id: "{{ body.data.object.id }}", amount: "{{ body.data.object.amount }}"}
      - id: thanks
        type: email
        to: "{{ body.data.object.receipt_email }}"
        subject: "Thanks for your payment"
        text: "We received {{ steps.notify.status }}"
        when: {path: $.body.data.object.receipt_email, op: exists}
        on_error: continue
"""

TEMPLATES = Path(__file__).resolve().parents[2] / "rules" / "templates"

U = "http://u"  # a webhook URL (its fixed part must be http(s) since issue 14)


def _rule(**overrides: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "r1",
        "source": "stripe",
        "actions": [{"type": "webhook", "url": "https://example.com/hook"}],
    }
    rule.update(overrides)
    return rule


def test_spec_example_parses_with_the_documented_meaning() -> None:
    parsed = parse_rule_file(yaml.safe_load(SPEC_EXAMPLE), file="spec.yaml")
    (source,) = parsed.sources
    assert source.verify.scheme == "stripe" and source.verify.secret == "STRIPE_WHSEC"
    assert source.dedup == DedupSpec(header="Stripe-Event-Id")
    (rule,) = parsed.rules
    assert isinstance(rule.when, AllGroup)
    assert isinstance(rule.when.all[2].any[1], NotGroup)  # type: ignore[union-attr]
    notify, save, thanks = rule.actions
    assert isinstance(notify, WebhookStep)
    assert notify.json_ == {"text": "Paid {{ body.data.object.amount / 100 }} "
                                    "{{ body.data.object.currency | upper }}"}  # fmt: skip
    assert notify.retry is not None and notify.retry.max_attempts == 6
    assert save.type == "db_write" and save.key == ["payment_id"]
    assert isinstance(thanks, EmailStep) and thanks.on_error == "continue"
    assert isinstance(thanks.when, Predicate) and thanks.when.op == "exists"


def test_defaults_and_normalisation() -> None:
    rule = parse_rule(
        _rule(
            actions=[
                {"type": "webhook", "url": "https://x", "method": "put"},
                {"type": "email", "to": ["a@x", "b@x"], "subject": "s", "html": "<p>hi</p>"},
                {"id": "custom", "type": "delay", "seconds": "{{ body.wait }}"},
                {"type": "delay", "seconds": "30"},
            ]
        )
    )
    assert [a.id for a in rule.actions] == ["step1", "step2", "custom", "step4"]
    assert rule.actions[0].method == "PUT"  # type: ignore[union-attr]
    assert rule.actions[0].timeout_s == 10  # type: ignore[union-attr]
    assert rule.actions[3].seconds == 30.0  # type: ignore[union-attr]
    assert (rule.enabled, rule.priority, rule.stop, rule.when, rule.tags) == (True, 0, False,
                                                                             None, [])  # fmt: skip
    source = parse_source({"slug": "plain"})
    assert source.verify == VerifySpec() and source.respond.mode == "immediate"
    assert source.respond.timeout_ms == 2500


def test_python_construction_accepts_field_names_and_aliases() -> None:
    by_alias = WebhookStep.model_validate({"type": "webhook", "url": U, "json": {"a": 1}})
    by_name = WebhookStep(type="webhook", url=U, json_={"a": 1})
    assert by_alias == by_name
    assert NotGroup.model_validate({"not": {"path": "$.a", "op": "exists"}}).not_.op == "exists"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("rule", "loc", "fragment"),
    [
        (_rule(name="Bad Name"), "name", "lowercase letters"),
        (_rule(source="Not A Slug"), "source", "source must be '*' or a source slug"),
        (_rule(actions=[]), "actions", "at least 1 item"),
        (_rule(priority="high"), "priority", "valid integer"),
        (_rule(colour="red"), "colour", "unknown field 'colour'"),
        (_rule(when={"path": "$.body[", "op": "eq", "value": 1}), "when.path", "invalid JSONPath"),
        (_rule(when={"path": "body.x", "op": "eq", "value": 1}), "when.path", "start with '$'"),
        (_rule(when={"path": "$.a", "op": "like", "value": 1}), "when.op", "'eq'"),
        (_rule(when={"path": "$.a", "op": "gt"}), "when", "op 'gt' needs `value`"),
        (_rule(when={"path": "$.a", "op": "exists", "value": 1}), "when", "takes no `value`"),
        (_rule(when={"path": "$.a", "op": "in", "value": "usd"}), "when.value", "list value"),
        (_rule(when={"path": "$.a", "op": "regex", "value": "(unclosed"}), "when.value",
         "invalid regular expression"),
        (_rule(when={"path": "$.a", "op": "eq", "value": 1, "value_path": "$.b"}), "when",
         "not both"),
        (_rule(when={"all": [{"path": "$.a", "op": "exists"}, {"pth": "$.b"}]}), "when.all[1]",
         "a condition needs `path` and `op`"),
        (_rule(when={"all": []}), "when.all", "at least 1 item"),
        (_rule(when={"not": {"any": [{"path": "$.a", "op": "eq", "value": 1, "x": 2}]}}),
         "when.not.any[0].x", "unknown field 'x'"),
        (_rule(actions=[{"type": "fax", "to": "x"}]), "actions[0]", "unknown step type 'fax'"),
        (_rule(actions=[{"url": "https://x"}]), "actions[0]", "a step needs `type`"),
        (_rule(actions=[{"type": "webhook"}]), "actions[0].url", "required field is missing"),
        (_rule(actions=[{"type": "webhook", "url": "{{ body.x"}]), "actions[0].url",
         "template syntax error"),
        (_rule(actions=[{"type": "webhook", "url": U, "json": {"a": ["{% if %}"]}}]),
         "actions[0].json", "a[0]: template syntax error"),
        (_rule(actions=[{"type": "webhook", "url": U, "headers": {"X": "{{ x | nope }}"}}]),
         "actions[0].headers.X", "No filter named 'nope'"),
        (_rule(actions=[{"type": "webhook", "url": U, "method": "FETCH"}]),
         "actions[0].method", "method must be one of"),
        (_rule(actions=[{"type": "webhook", "url": U, "json": {}, "body": "x"}]), "actions[0]",
         "`json` or `body`, not both"),
        (_rule(actions=[{"type": "webhook", "url": U, "timeout_s": 500}]),
         "actions[0].timeout_s", "less than or equal to 120"),
        (_rule(actions=[{"type": "webhook", "url": U, "sign": {"secret": "a b"}}]),
         "actions[0].sign.secret", "secret name"),
        (_rule(actions=[{"type": "webhook", "url": U, "retry": {"max_attempts": 99}}]),
         "actions[0].retry.max_attempts", "less than or equal to 50"),
        (_rule(actions=[{"type": "webhook", "url": U, "on_error": "ignore"}]),
         "actions[0].on_error", "'stop' or 'continue'"),
        (_rule(actions=[{"type": "webhook", "url": U, "id": "9lives"}]), "actions[0].id",
         "not starting with a digit"),
        (_rule(actions=[{"type": "webhook", "url": U, "id": "a"}, {"type": "delay",
                                                                     "seconds": 1, "id": "a"}]),
         "", "duplicate step id 'a'"),
        (_rule(actions=[{"type": "email", "to": "a@x", "subject": "s"}]), "actions[0]",
         "needs `text` or `html`"),
        (_rule(actions=[{"type": "email", "to": 5, "subject": "s", "text": "t"}]),
         "actions[0].to", "valid string or a valid list"),
        (_rule(actions=[{"type": "email", "to": "a", "text": "t"}]), "actions[0].subject",
         "required field is missing"),
        (_rule(actions=[{"type": "db_write", "table": "x; drop table y", "values": {"a": 1}}]),
         "actions[0].table", "table name"),
        (_rule(actions=[{"type": "db_write", "table": "t", "values": {}}]), "actions[0].values",
         "at least 1 item"),
        (_rule(actions=[{"type": "db_write", "table": "t", "values": {"a b": 1}}]),
         "actions[0].values.a b", "column name"),
        (_rule(actions=[{"type": "db_write", "table": "t", "mode": "upsert",
                         "values": {"a": 1}}]), "actions[0]", "needs `key`"),
        (_rule(actions=[{"type": "db_write", "table": "t", "mode": "upsert", "key": ["id"],
                         "values": {"a": 1}}]), "actions[0]", "key columns missing"),
        (_rule(actions=[{"type": "reply", "json": {}, "text": "x"}]), "actions[0]",
         "one of json, text, body"),
        (_rule(actions=[{"type": "reply", "status": 999}]), "actions[0].status",
         "less than or equal to 599"),
        (_rule(actions=[{"type": "state", "set": {"a": 1}}]), "actions[0].key",
         "required field is missing"),
        (_rule(actions=[{"type": "delay", "seconds": "soon"}]), "actions[0].seconds",
         "a number or a template"),
        (_rule(actions=[{"type": "delay", "seconds": -5}]), "actions[0].seconds",
         "must not be negative"),
    ],
)  # fmt: skip
def test_invalid_rules_name_rule_field_and_reason(
    rule: dict[str, Any], loc: str, fragment: str
) -> None:
    with pytest.raises(RuleValidationError) as info:
        parse_rule(rule, file="rules.yaml")
    matching = [e for e in info.value.errors if e.loc == loc and fragment in e.message]
    assert matching, [str(e) for e in info.value.errors]
    error = matching[0]
    assert error.file == "rules.yaml"
    expected_label = f"rule '{rule['name']}'" if isinstance(rule.get("name"), str) else "rule"
    assert error.rule == expected_label
    assert "rules.yaml" in str(info.value) and fragment in str(info.value)


@pytest.mark.parametrize(
    ("source", "loc", "fragment"),
    [
        ({"slug": "Bad Slug"}, "slug", "lowercase letters"),
        ({"slug": "s", "verify": {"scheme": "stripe"}}, "verify", "needs `secret`"),
        ({"slug": "s", "verify": {"scheme": "hmac", "secret": "K"}}, "verify", "needs `header`"),
        ({"slug": "s", "verify": {"scheme": "pgp", "secret": "K"}}, "verify.scheme", "'none'"),
        ({"slug": "s", "dedup": {}}, "dedup", "exactly one of"),
        ({"slug": "s", "dedup": {"header": "X-Id", "path": "$.body.id"}}, "dedup", "exactly one"),
        ({"slug": "s", "dedup": {"path": "$.body["}}, "dedup.path", "invalid JSONPath"),
        ({"slug": "s", "respond": {"mode": "reply", "timeout_ms": 0}}, "respond.timeout_ms",
         "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_invalid_sources(source: dict[str, Any], loc: str, fragment: str) -> None:
    with pytest.raises(RuleValidationError) as info:
        parse_source(source, file="s.yaml")
    assert any(e.loc == loc and fragment in e.message for e in info.value.errors), [
        str(e) for e in info.value.errors
    ]
    assert all(e.rule == f"source '{source['slug']}'" for e in info.value.errors)


def test_file_errors_are_all_collected_with_file_rule_field_and_value() -> None:
    data = {
        "sources": [{"slug": "ok"}, {"slug": "ok"}, {"slug": "NO"}],
        "rules": [
            _rule(name="first", when={"path": "$.a", "op": "gt", "value": 1}),
            _rule(name="second", actions=[{"type": "webhook", "url": "{{ x"}]),
            {"source": "stripe", "actions": [{"type": "delay", "seconds": 1}]},
            _rule(name="second"),
        ],
        "extras": [],
    }
    with pytest.raises(RuleValidationError) as info:
        parse_rule_file(data, file="team.yaml")
    seen = {(e.rule, e.loc) for e in info.value.errors}
    assert ("source 'NO'", "slug") in seen
    assert ("source 'ok'", "slug") in seen  # duplicate slug
    assert ("rule 'second'", "actions[0].url") in seen
    assert ("rules[2]", "name") in seen
    assert ("rule 'second'", "name") in seen  # duplicate name
    assert (None, "extras") in seen
    assert all(e.file == "team.yaml" for e in info.value.errors)
    url_error = next(e for e in info.value.errors if e.loc == "actions[0].url")
    assert url_error.value == "{{ x"
    assert str(url_error).startswith("team.yaml: rule 'second': field actions[0].url: template")


@pytest.mark.parametrize("data", [[1, 2], "rules", 5])
def test_file_must_be_a_mapping(data: Any) -> None:
    with pytest.raises(RuleValidationError, match="a rule file is a mapping"):
        parse_rule_file(data, file="f.yaml")


def test_rule_file_model_rejects_duplicates_when_built_directly() -> None:
    rule = parse_rule(_rule())
    with pytest.raises(ValidationError, match="duplicate rule name: r1"):
        RuleFile(rules=[rule, rule])
    assert parse_rule_file(None).rules == []


def test_load_rule_file_reports_yaml_syntax_errors_with_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("rules:\n  - name: x\n    source: [unclosed\n")
    with pytest.raises(RuleValidationError) as info:
        load_rule_file(path)
    (error,) = info.value.errors
    assert error.file == str(path)
    assert "YAML syntax error at line" in error.message
    assert str(path) in str(info.value)


def test_load_rule_file_reports_missing_files(tmp_path: Path) -> None:
    with pytest.raises(RuleValidationError, match="cannot read file"):
        load_rule_file(tmp_path / "nope.yaml")


def test_load_rule_file_keeps_dates_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "dates.yaml"
    path.write_text(SPEC_EXAMPLE.replace("value: 1000", "value: 2024-01-31"))
    rule = load_rule_file(path).rules[0]
    assert rule.when.all[1].value == "2024-01-31"  # type: ignore[union-attr]


def test_load_rule_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  - name: x\n    source: s\n    actions: [{type: webhook}]\n")
    with pytest.raises(RuleValidationError) as info:
        load_rule_file(path)
    assert info.value.errors == [
        FieldError("actions[0].url", "required field is missing", str(path), "rule 'x'", None)
    ]


ROUND_TRIP_RULES = [
    yaml.safe_load(SPEC_EXAMPLE)["rules"][0],
    _rule(
        name="everything",
        source="*",
        description="all step types",
        enabled=False,
        priority=-3,
        stop=True,
        tags=["a", "b"],
        when={"not": {"path": "$.headers.x-test-mode", "op": "eq", "value": None or "1",
                      "ignore_case": True, "match": "all"}},
        actions=[
            {"type": "webhook", "url": U, "method": "get", "query": {"q": "{{ body.q }}"},
             "body": "raw {{ body }}", "timeout_s": 2.5},
            {"type": "email", "to": ["a@x"], "cc": "c@x", "bcc": ["d@x"], "from": "me@x",
             "reply_to": "r@x", "subject": "s", "text": "t", "html": "<b>h</b>"},
            {"type": "db_write", "connection": "WAREHOUSE_URL", "table": "public.t",
             "values": {"a": "{{ body.a }}", "b": None, "c": [1, {"d": False}]}},
            {"type": "reply", "status": 201, "headers": {"X-A": "1"}, "text": "ok",
             "content_type": "text/plain"},
            {"type": "state", "key": "k-{{ body.id }}", "set": {"a": None}, "ttl_s": 60},
            {"type": "delay", "seconds": "{{ body.wait }}", "retry": {"backoff": "fixed"}},
            {"type": "delay", "seconds": 0.5, "when": {"path": "$.a", "op": "gt",
                                                         "value_path": "$.b"}},
        ],
    ),
]  # fmt: skip


@pytest.mark.parametrize("data", ROUND_TRIP_RULES)
def test_dump_rule_round_trips(data: dict[str, Any]) -> None:
    rule = parse_rule(copy.deepcopy(data))
    dumped = dump_rule(rule)
    assert parse_rule(dumped) == rule
    assert yaml.safe_load(yaml.safe_dump(dumped)) == dumped  # plain data, YAML-exportable
    assert list(dumped)[:2] == ["name", "source"]
    assert all(list(action)[:2] == ["id", "type"] for action in dumped["actions"])


def test_dump_rule_uses_aliases_and_omits_defaults() -> None:
    rule = parse_rule(ROUND_TRIP_RULES[1])
    dumped = dump_rule(rule)
    email = dumped["actions"][1]
    assert email["from"] == "me@x" and "from_" not in email
    assert "not" in dumped["when"] and "not_" not in dumped["when"]
    webhook = dump_rule(parse_rule(ROUND_TRIP_RULES[0]))["actions"][0]
    assert "json" in webhook and "json_" not in webhook
    assert "on_error" not in webhook and "body" not in webhook and "method" not in webhook
    minimal = dump_rule(parse_rule(_rule()))
    assert minimal == {"name": "r1", "source": "stripe",
                       "actions": [{"id": "step1", "type": "webhook",
                                    "url": "https://example.com/hook"}]}  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        {"slug": "plain"},
        {"slug": "tok", "verify": {"scheme": "token", "secret": "T", "param": None}},
        {"slug": "h", "description": "d", "verify": {"scheme": "hmac", "secret": "K",
         "header": "X-Sig", "algorithm": "sha1", "encoding": "base64", "prefix": "sha1=",
         "tolerance_s": 60}, "dedup": {"path": "$.body.id"},
         "respond": {"mode": "reply", "timeout_ms": 1000, "fallback": {"status": 200}}},
    ],
)  # fmt: skip
def test_dump_source_round_trips(data: dict[str, Any]) -> None:
    source = parse_source(data)
    assert parse_source(dump_source(source)) == source
    assert dump_source(SourceSpec(slug="plain")) == {"slug": "plain"}


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.yaml")), ids=lambda p: p.name)
def test_starter_files_round_trip(path: Path) -> None:
    parsed = load_rule_file(path)
    assert parsed.rules and parsed.sources
    for rule in parsed.rules:
        assert parse_rule(dump_rule(rule)) == rule
    for source in parsed.sources:
        assert parse_source(dump_source(source)) == source


def test_rule_spec_accepts_wildcard_source() -> None:
    assert RuleSpec.model_validate(_rule(source="*")).source == "*"


# -- every number is bounded (issue 12, item 11) -------------------------------------------
def _numbers(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every integer/number schema inside a JSON Schema, with where it is."""
    found = []
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            found.append((path, node))
        for key, value in node.items():
            found.extend(_numbers(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_numbers(value, f"{path}[{i}]"))
    return found


def test_every_number_in_the_rule_schema_is_bounded() -> None:
    """A number the database, a timedelta or Redis cannot hold must be refused when the
    rule is saved, so every numeric field of every model declares both bounds."""
    numbers = _numbers(RuleFile.model_json_schema())
    assert len(numbers) >= 15  # priority, timeouts, retry, ttl_s, delay, rate limits...
    unbounded = [path for path, node in numbers
                 if not ({"minimum", "exclusiveMinimum"} & set(node)
                         and {"maximum", "exclusiveMaximum"} & set(node))]
    assert unbounded == []


HUGE = 99999999999999999999


@pytest.mark.parametrize(
    ("rule", "loc", "fragment"),
    [
        (_rule(priority=HUGE), "priority", "less than or equal to 1000000"),
        (_rule(priority=-HUGE), "priority", "greater than or equal to -1000000"),
        (_rule(actions=[{"type": "webhook", "url": U, "timeout_s": HUGE}]),
         "actions[0].timeout_s", "less than or equal to 120"),
        (_rule(actions=[{"type": "webhook", "url": U, "timeout_s": float("nan")}]),
         "actions[0].timeout_s", "finite number"),
        (_rule(actions=[{"type": "webhook", "url": U, "retry": {"max_attempts": HUGE}}]),
         "actions[0].retry.max_attempts", "less than or equal to 50"),
        (_rule(actions=[{"type": "webhook", "url": U, "retry": {"initial_s": HUGE}}]),
         "actions[0].retry.initial_s", "less than or equal to 604800"),
        (_rule(actions=[{"type": "webhook", "url": U,
                         "retry": {"max_s": float("inf")}}]),
         "actions[0].retry.max_s", "finite number"),
        (_rule(actions=[{"type": "reply", "status": HUGE}]), "actions[0].status",
         "less than or equal to 599"),
        (_rule(actions=[{"type": "state", "key": "k", "ttl_s": HUGE}]), "actions[0].ttl_s",
         "less than or equal to 316224000"),
        (_rule(actions=[{"type": "delay", "seconds": HUGE}]), "actions[0].seconds",
         "at most 31622400"),
        (_rule(actions=[{"type": "delay", "seconds": "1e999"}]), "actions[0].seconds",
         "finite number"),
        (_rule(actions=[{"type": "delay", "seconds": float("nan")}]), "actions[0].seconds",
         "finite number"),
    ],
)  # fmt: skip
def test_out_of_range_numbers_name_the_field(rule: dict[str, Any], loc: str,
                                             fragment: str) -> None:
    with pytest.raises(RuleValidationError) as info:
        parse_rule(rule, file="rules.yaml")
    assert [(e.loc, fragment in e.message) for e in info.value.errors] == [(loc, True)], [
        str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    ("source", "loc"),
    [
        ({"slug": "s", "verify": {"scheme": "stripe", "secret": "K", "tolerance_s": HUGE}},
         "verify.tolerance_s"),
        ({"slug": "s", "respond": {"mode": "reply", "timeout_ms": HUGE}}, "respond.timeout_ms"),
        ({"slug": "s", "rate_limit": {"requests": HUGE}}, "rate_limit.requests"),
        ({"slug": "s", "rate_limit": {"requests": 1, "per_s": HUGE}}, "rate_limit.per_s"),
    ],
)  # fmt: skip
def test_out_of_range_source_numbers_name_the_field(source: dict[str, Any], loc: str) -> None:
    with pytest.raises(RuleValidationError) as info:
        parse_source(source, file="s.yaml")
    assert [e.loc for e in info.value.errors] == [loc]
    assert "less than or equal to" in info.value.errors[0].message


def test_numbers_within_bounds_still_parse() -> None:
    spec = parse_rule(_rule(priority=-1_000_000, actions=[
        {"type": "state", "key": "k", "ttl_s": 86_400},
        {"type": "delay", "seconds": "3600"},
        {"type": "webhook", "url": U, "retry": {"initial_s": 1, "max_s": 604_800}}]))
    assert spec.priority == -1_000_000
