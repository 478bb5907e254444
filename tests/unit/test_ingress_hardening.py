"""parse_body applies one depth rule and one number rule to every JSON it decodes
(issue item 10): raw JSON, undeclared type, +json and a form's payload= field."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from engine.errors import BodyError
from engine.ingress.parsing import MAX_JSON_DEPTH, parse_body


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def variants(text: str) -> list[tuple[str, bytes]]:
    out = [("application/json", text.encode()), ("", text.encode()),
           ("application/problem+json", text.encode())]
    if text[:1] in "[{":  # a payload= field is decoded when it is an object or array
        out += [("application/x-www-form-urlencoded", f"payload={quote(text)}".encode()),
                ("APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8",
                 f"a=1&payload={quote(text)}".encode())]
    return out


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900, 5000, 100_000])
def test_too_deep_is_a_body_error_naming_the_limit(depth: int) -> None:
    for ctype, raw in variants(nested(depth)):
        with pytest.raises(BodyError, match=f"deeper than {MAX_JSON_DEPTH} levels"):
            parse_body(ctype, raw)


@pytest.mark.parametrize("text", ['{"a": NaN}', "Infinity", "[-Infinity]", '{"a": 1e999}',
                                  "-1E400", '{"x": [{"y": NaN}]}'])
def test_non_finite_numbers_are_a_body_error(text: str) -> None:
    for ctype, raw in variants(text):
        with pytest.raises(BodyError, match="NaN or infinit"):
            parse_body(ctype, raw)


def test_limits_are_inclusive() -> None:
    assert parse_body("application/json", nested(MAX_JSON_DEPTH).encode()) is not None
    form = parse_body("application/x-www-form-urlencoded",
                      f"payload={quote(nested(MAX_JSON_DEPTH - 1))}".encode())
    assert isinstance(form["payload"], list)
    assert parse_body("application/json", b"[1e308, -1e308, 5e-324]") == [1e308, -1e308, 5e-324]
    assert parse_body("", b"not json") == "not json"
    assert parse_body("application/x-www-form-urlencoded", b"payload=%7Bx") == {"payload": "{x"}
    assert parse_body("application/x-www-form-urlencoded", b"payload=NaN") == {"payload": "NaN"}
