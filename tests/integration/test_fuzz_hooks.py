"""Property test (Hypothesis) of the ingest endpoint: POST /hooks/<source> with arbitrary
bytes and headers never answers 500, on every verification scheme. The strategies are the
pure fuzz tests' (tests/unit/test_fuzz.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_fuzz import FAST, HEADER_NAMES, SECRET, bodies, content_types, header_values

HOOK_SOURCES = """
sources:
  - slug: open
  - slug: tok
    verify: {scheme: token, secret: K, header: X-Token}
  - slug: hm
    verify: {scheme: hmac, secret: K, header: X-Sig}
  - slug: gh
    verify: {scheme: github, secret: K}
  - slug: stripe
    verify: {scheme: stripe, secret: K}
  - slug: slack
    verify: {scheme: slack, secret: K}
  - slug: std
    verify: {scheme: standard, secret: K}
  - slug: shop
    verify: {scheme: shopify, secret: K}
  - slug: tw
    verify: {scheme: twilio, secret: K}
  - slug: tg
    verify: {scheme: telegram, secret: K}
  - slug: basic
    verify: {scheme: basic, secret: K}
  - slug: dd
    dedup: {path: $.body.id}
  - slug: dh
    dedup: {header: X-Id}
  - slug: limited
    rate_limit: {requests: 5, per_s: 60}
"""
SLUGS = ["open", "tok", "hm", "gh", "stripe", "slack", "std", "shop", "tw", "tg", "basic",
         "dd", "dh", "limited", "nope", "%00", "..", "a" * 300]

# latin-1 text without CR/LF: what can travel in an HTTP header value
wire_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                           blacklist_characters="\x7f"), max_size=60)
wire_values = st.one_of(wire_text, header_values.filter(
    lambda v: all(0x20 <= ord(c) <= 0xFF for c in v) and "\x7f" not in v))


@pytest.fixture
def hooks(rt, tmp_path):  # type: ignore[no-untyped-def]
    from engine.store.rule_files import apply_paths

    f = tmp_path / "sources.yaml"
    f.write_text(HOOK_SOURCES)
    apply_paths(rt.catalog, [f])
    rt.secrets.set("K", SECRET)
    return rt


# The huge-timestamp crash (test_huge_timestamp_is_a_verification_error in the unit fuzz
# tests) is excluded here (header values are at most 60 long) so this property stays
# green; test_huge_timestamp_posted_is_not_a_500 covers it.
@FAST
@given(
    slug=st.sampled_from(SLUGS),
    method=st.sampled_from(["POST", "PUT"]),
    content_type=st.one_of(st.none(), content_types.filter(
        lambda c: all(0x20 <= ord(x) <= 0x7E for x in c))),
    raw=bodies,
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES + ["x-id", "content-encoding",
                                                            "transfer-encoding", "x-a"]),
                            wire_values, max_size=5),
    query=st.sampled_from(["", "?token=K", "?a=%ff", "?bodySHA256=00", "?a=1&a=2", "?%00=1"]),
)
def test_post_hooks_never_answers_500(hooks, client, slug: str, method: str,  # type: ignore[no-untyped-def]
                                      content_type: str | None, raw: bytes,
                                      headers: dict[str, str], query: str) -> None:
    headers = {k: v for k, v in headers.items()
               if k not in ("content-encoding", "transfer-encoding") or v.strip() == ""}
    kwargs: dict[str, Any] = {"data": raw, "headers": headers}
    if content_type is not None:
        kwargs["content_type"] = content_type
    resp = client.open(f"/hooks/{slug}{query}", method=method, **kwargs)
    assert resp.status_code < 500 or resp.status_code == 503, (resp.status_code, resp.data)
    assert resp.status_code != 503  # the database is up: nothing may be refused as unstored
    if resp.status_code >= 400:
        body = resp.get_json()
        assert body and body["error"] and body["message"]


def test_punycode_body_posted_is_not_a_500(hooks, client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/hooks/open", data=b"\x00", content_type="text/plain; charset=punycode")
    assert resp.status_code == 400


def test_huge_timestamp_posted_is_not_a_500(hooks, client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/hooks/std", data=b"{}", content_type="application/json",
                       headers={"webhook-id": "m1", "webhook-timestamp": "9" * 400,
                                "webhook-signature": "v1,xx"})
    assert resp.status_code == 401
