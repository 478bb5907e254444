"""Sandboxed templates: native types, strict undefined names, sandbox escapes, size limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rules.errors import TemplateError
from rules.templating import (
    MAX_OUTPUT_CHARS,
    check_template,
    compile_value,
    render_template,
)

CONTEXT: dict[str, Any] = {
    "body": {
        "data": {"object": {"amount": 2599, "currency": "usd", "id": "pi_1"}},
        "x": "hello",
        "items": [{"sku": "A", "grams": 100}, {"sku": "B", "grams": 250}],
        "flag": False,
        "nothing": None,
    },
    "headers": {"content-type": "application/json"},
    "query": {"page": "2"},
    "event": {"id": "evt_1", "source": "stripe", "received_at": "2024-04-12T09:31:08Z"},
    "steps": {"notify": {"status": 200, "json": {"id": 77, "ok": True}}},
    "secrets": {"TOKEN": "s3cret"},
    "state": lambda key: {"answer": f"for {key}"},
    "rule": {"name": "r1"},
    "now": "2024-04-12T09:31:08Z",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("{{ body.data.object.amount / 100 }}", 25.99),
        ("{{ body.data.object.amount }}", 2599),
        ("  {{ body.data.object.amount }}  ", 2599),
        ("{{ body.flag }}", False),
        ("{{ body.nothing }}", None),
        ("{{ body.data.object }}", {"amount": 2599, "currency": "usd", "id": "pi_1"}),
        ("{{ body.items | map(attribute='sku') | list }}", ["A", "B"]),
        ("{{ body.items | sum(attribute='grams') }}", 350),
        ("{{ body.x | upper }}", "HELLO"),
        ("{{ steps.notify.json.id }}", 77),
        ("{{ secrets.TOKEN }}", "s3cret"),
        ("{{ state('chat-1').answer }}", "for chat-1"),
        ("{{ query.page | int + 1 }}", 3),
        ("{{ body.missing | default('n/a') }}", "n/a"),
        ("Paid {{ body.data.object.amount / 100 }} {{ body.data.object.currency | upper }}",
         "Paid 25.99 USD"),
        ("{{ body.data.object.amount }} cents", "2599 cents"),
        ("{{ 1 }}{{ 2 }}", "12"),
        ("{% if body.flag %}yes{% else %}no{% endif %}", "no"),
        ("{{ body.data.object | json }}", '{"amount": 2599, "currency": "usd", "id": "pi_1"}'),
        ("{{ body.data.object | tojson }}", '{"amount": 2599, "currency": "usd", "id": "pi_1"}'),
        ("{{ '{\"a\": 1}' | fromjson }}", {"a": 1}),
        ("{{ 'user:pw' | b64encode }}", "dXNlcjpwdw=="),
        ("{{ '<b>' }}", "<b>"),  # no HTML autoescaping
        ("{{ '%.2f' | format(2599 / 100) }}", "25.99"),
        ("line\n", "line\n"),
    ],
)  # fmt: skip
def test_render_keeps_native_types(text: str, expected: Any) -> None:
    result = render_template(text, CONTEXT)
    assert result == expected
    assert type(result) is type(expected)


def test_compile_value_walks_dicts_and_lists() -> None:
    value = {
        "amount": "{{ body.data.object.amount }}",
        "label": "id {{ body.data.object.id }}",
        "nested": [{"ok": "{{ steps.notify.json.ok }}"}, 3, None, "literal"],
        "fixed": {"a": [1, 2]},
    }
    rendered = compile_value(value).render(CONTEXT)
    assert rendered == {
        "amount": 2599,
        "label": "id pi_1",
        "nested": [{"ok": True}, 3, None, "literal"],
        "fixed": {"a": [1, 2]},
    }
    json.dumps(rendered)


def test_literals_are_copied_so_callers_cannot_corrupt_later_renders() -> None:
    compiled = compile_value({"a": [1, 2]})
    first = compiled.render({})
    first["a"].append(3)
    assert compiled.render({}) == {"a": [1, 2]}
    assert compiled.is_literal


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("{{ body.data.object.nope }}", ["'body.data.object' has no attribute 'nope'"]),
        ("{{ body.amount }}", ["'body' has no attribute 'amount'"]),
        ("{{ body['data']['zz'] }}", ["'body.data' has no attribute 'zz'"]),
        ("{{ nope }}", ["'nope' is undefined"]),
        ("Hi {{ nope.deeper }}", ["'nope' is undefined", "Hi {{ nope.deeper }}"]),
        ("{{ steps.missing.json.id }}", ["'steps' has no attribute 'missing'"]),
        ("{{ secrets.OTHER }}", ["'secrets' has no attribute 'OTHER'"]),
        ("{{ steps.notify.json.id }}-{{ body.id }}", ["'body' has no attribute 'id'"]),
        ("{{ 1 / 0 }}", ["ZeroDivisionError"]),
    ],
)
def test_undefined_names_and_runtime_errors_raise_template_error(
    text: str, fragments: list[str]
) -> None:
    with pytest.raises(TemplateError) as info:
        render_template(text, CONTEXT)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert info.value.template == text


def test_render_error_names_the_field() -> None:
    compiled = compile_value({"json": {"text": "x {{ body.nope }}"}})
    with pytest.raises(TemplateError) as info:
        compiled.render(CONTEXT)
    assert info.value.field == "json.text"
    assert str(info.value).startswith("json.text: 'body' has no attribute 'nope'")


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ state.__globals__ }}",
        "{{ body.__class__ }}",
        "{{ body.items.append(1) }}",
        "{{ body.data.update({'x': 1}) }}",
        "{{ body.items.pop() }}",
        "{% for c in ''.__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ self.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ (1).__class__.__base__ }}",
    ],
)
def test_sandbox_escapes_raise_template_error(text: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_template(text, CONTEXT)
    message = str(info.value)
    assert "unsafe" in message or "has no attribute" in message or "undefined" in message


def test_sandbox_message_says_unsafe_access() -> None:
    with pytest.raises(TemplateError, match=r"^template tried unsafe access: .*__class__"):
        render_template("{{ ''.__class__ }}", {})
    assert CONTEXT["body"]["items"] == [{"sku": "A", "grams": 100}, {"sku": "B", "grams": 250}]


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'x' * 2000000 }}",
        "{{ [1] * 2000000 }}",
        "{{ 10 ** 100000 }}",
        "{% for i in range(100000) %}{% endfor %}",
        "{% for i in range(5000) %}{{ 'y' * 1000 }}{% endfor %}",
        "{{ 'x' | center(10000000) }}",
        "{{ '%10000000d' % 1 }}",
        "{{ '{:>10000000}'.format(1) }}",
        "{{ 'a' | indent(100000000) }}",
    ],
)
def test_size_limits(text: str) -> None:
    with pytest.raises(TemplateError, match="too large"):
        render_template(text, {})


def test_output_exactly_at_the_cap_is_allowed() -> None:
    assert len(render_template(f"{{{{ 'x' * {MAX_OUTPUT_CHARS} }}}}", {})) == MAX_OUTPUT_CHARS


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ x", "template syntax error"),
        ("{% if %}", "template syntax error"),
        ("{{ x | no_such_filter }}", "No filter named 'no_such_filter'"),
        ("{% for %}", "template syntax error"),
    ],
)
def test_check_template_rejects_bad_syntax(text: str, fragment: str) -> None:
    with pytest.raises(TemplateError, match=fragment):
        check_template(text)


def test_compile_value_error_names_the_nested_field() -> None:
    with pytest.raises(TemplateError) as info:
        compile_value({"a": [{"b": "ok"}, {"c": "{{ oops"}]})
    assert info.value.field == "a[1].c"
    assert str(info.value).startswith("a[1].c: template syntax error")


@pytest.mark.parametrize("text", ["{{ body.x }}", "{% raw %}{{{% endraw %}", "no markup {x}"])
def test_check_template_accepts_valid_text(text: str) -> None:
    check_template(text)


# --- engine objects never print (issue 12, item 14b); ~ checked like every other builder


class _Engineish:
    pass


@pytest.mark.parametrize("text", [
    "{{ state }}", "seen: {{ state }}", "{{ state|string }}", "{{ [state] }}",
    "{{ {'k': state} }}", "{{ 'x' ~ state }}", "{{ range }}", "{{ obj }}", "at {{ obj }}",
])
def test_functions_and_engine_objects_are_refused_not_printed(text: str) -> None:
    """Before: each rendered a repr such as '<function … at 0x7f…>' (a memory address)."""
    with pytest.raises(TemplateError, match="cannot print .*it is not data"):
        render_template(text, {"state": lambda key: {}, "obj": _Engineish()})


@pytest.mark.parametrize(("text", "want"), [
    ("{{ range(3)|string }}", "range(0, 3)"),
    ("{{ 'a' ~ 1 ~ none ~ [2] }}", "a1None[2]"),
    ("{{ {'a': [1, 'b']} }}", {"a": [1, "b"]}),
    ("n={{ {'a': 1} }}", "n={'a': 1}"),
    ("{{ body|string }}", "{'x': 1}"),
])
def test_data_still_prints(text: str, want: object) -> None:
    assert render_template(text, {"body": {"x": 1}}) == want


def test_concatenation_past_the_output_cap_is_refused_before_it_grows() -> None:
    """A macro doubling a string with ~: before, it built 1.3 MB here (1.3 GB at 27
    doublings, the OOM kill loop of the review); now it stops at the output cap."""
    text = ("{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}"
            "{% endif %}{% endmacro %}{{ d('xxxxxxxxxx', 17) }}")
    with pytest.raises(TemplateError, match="~ result longer than"):
        render_template(text, {})
    assert render_template(text.replace("17", "10"), {}) == "10240"
