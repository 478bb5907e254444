"""Sync replies: the caller's HTTP answer comes from a worker's ``reply`` step."""

from __future__ import annotations

import threading
import time

from engine.store.rule_files import apply_paths
from tests.servers import Reply

RULES = """
sources:
  - slug: bot
    respond:
      mode: reply
      timeout_ms: {timeout}
      fallback: {{status: 200, json: {{text: "working on it"}}}}
rules:
  - name: answer
    source: bot
    actions:
      - id: lookup
        type: webhook
        url: {url}/lookup
        json: {{q: "{{{{ body.text }}}}"}}
      - id: answer
        type: reply
        json: {{text: "{{{{ body.user }}}}: {{{{ steps.lookup.json.answer }}}}"}}
"""


def post_in_thread(client, body):  # type: ignore[no-untyped-def]
    result: dict = {}

    def go() -> None:
        t0 = time.monotonic()
        result["resp"] = client.post("/hooks/bot", json=body)
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=go)
    t.start()
    return t, result


def test_reply_step_answers_the_caller(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text(RULES.format(timeout=5000, url=sink.url))
    apply_paths(rt.catalog, [f])
    sink.respond("/lookup", Reply(json={"answer": "42"}))
    t, result = post_in_thread(client, {"user": "ann", "text": "meaning?"})
    work(until=lambda: not t.is_alive(), timeout=10)  # the worker runs while it waits
    t.join()
    resp = result["resp"]
    assert resp.status_code == 200
    assert resp.get_json() == {"text": "ann: 42"}  # produced after the outgoing call
    assert resp.headers["X-Hookwise-Event-Id"].startswith("evt_")
    assert result["elapsed"] < 3


def test_slow_chain_gets_the_fallback_and_still_finishes(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    from sqlmodel import Session, select

    from engine.store.models import Execution

    f = tmp_path / "r.yaml"
    f.write_text(RULES.format(timeout=300, url=sink.url))
    apply_paths(rt.catalog, [f])
    sink.respond("/lookup", Reply(json={"answer": "late"}, delay=1.0))
    t, result = post_in_thread(client, {"user": "bob", "text": "slow?"})
    t.join(timeout=5)  # no worker yet: the deadline passes
    assert result["resp"].status_code == 200
    assert result["resp"].get_json() == {"text": "working on it"}
    work()
    with Session(rt.db) as s:
        assert s.exec(select(Execution)).one().status == "succeeded"


def test_no_matching_rule_releases_the_caller_at_once(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text(RULES.format(timeout=5000, url=sink.url).replace(
        "    actions:", "    when: {path: $.body.user, op: eq, value: nobody}\n    actions:"))
    apply_paths(rt.catalog, [f])
    t, result = post_in_thread(client, {"user": "ann", "text": "hi"})
    work(until=lambda: not t.is_alive(), timeout=10)
    t.join()
    assert result["resp"].get_json() == {"text": "working on it"}  # the fallback …
    assert result["elapsed"] < 2.5  # … without waiting out the 5 s deadline


def test_a_late_reply_is_not_delivered_and_says_so(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    from sqlmodel import Session, select

    from engine.store.models import StepRun

    f = tmp_path / "r.yaml"
    f.write_text(RULES.format(timeout=200, url=sink.url))
    apply_paths(rt.catalog, [f])
    sink.respond("/lookup", Reply(json={"answer": "too late"}))
    t, result = post_in_thread(client, {"user": "bob", "text": "late"})
    t.join(timeout=5)  # deadline passes before any worker runs
    work()
    with Session(rt.db) as s:
        answer = s.exec(select(StepRun).where(StepRun.step_id == "answer")).one()
    assert answer.status == "succeeded", answer.error
    assert answer.output["delivered"] is False
    assert rt.redis.exists("hookwise:reply:" + result["resp"].headers.get(
        "X-Hookwise-Event-Id", "x")) == 0  # nothing left behind for nobody


def test_a_bad_fallback_is_refused_at_save_not_answered_with_a_500() -> None:
    import pytest

    from rules.errors import RuleValidationError
    from rules.schema import parse_source

    with pytest.raises(RuleValidationError, match="respond.fallback"):
        parse_source({"slug": "s", "respond": {"mode": "reply", "fallback": {"status": "x"}}})
