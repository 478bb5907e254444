"""Flow blocks end to end (issue 15, items 1-5): branch, foreach, set and emit steps
through YAML, the API, a real RQ worker and a real HTTP receiver on loopback."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from sqlmodel import Session, select

from engine.store.models import Execution, StepRun
from engine.store.rule_files import apply_paths
from tests.conftest import USER_EMAIL, USER_PASSWORD
from tests.servers import Reply


def apply(rt, tmp_path, text: str) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "rules.yaml"
    f.write_text(text)
    apply_paths(rt.catalog, [f])


def executions(rt) -> list[Execution]:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return list(s.exec(select(Execution).order_by(Execution.created_at)))  # type: ignore[arg-type]


def step_rows(rt, execution_id: str) -> list[StepRun]:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return list(s.exec(select(StepRun).where(StepRun.execution_id == execution_id)
                           .order_by(StepRun.position)))  # type: ignore[arg-type]


def finished(rt, n: int):  # type: ignore[no-untyped-def]
    return lambda: sum(1 for e in executions(rt)
                       if str(getattr(e.status, "value", e.status)) in ("succeeded", "failed")) >= n


def login(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    r = client.post("/login", data={"email": USER_EMAIL, "password": USER_PASSWORD,
                                    "csrf_token": token.group(1)})
    assert r.status_code == 302


def status(x: Any) -> str:
    return str(getattr(x, "value", x))


BRANCH = """
sources: [{{slug: s}}]
rules:
  - name: route
    source: s
    actions:
      - id: route
        type: branch
        cases:
          - name: start
            when: {{path: $.body.text, op: startswith, value: /start}}
            steps:
              - {{id: ask, type: webhook, url: "{url}/ask", json: {{t: "{{{{ body.text }}}}"}}}}
          - when: {{path: $.body.text, op: eq, value: second}}
            steps:
              - {{id: two, type: webhook, url: "{url}/two", json: {{}}}}
        else:
          - {{id: other, type: webhook, url: "{url}/other", json: {{}}}}
      - id: after
        type: webhook
        url: "{url}/after"
        json: {{case: "{{{{ steps.route.case }}}}",
                ask: "{{{{ steps.ask.status if steps.ask is defined else 'none' }}}}"}}
"""


def test_branch_runs_the_first_case_that_holds_and_says_which(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path, api):
    apply(rt, tmp_path, BRANCH.format(url=sink.url))
    for text in ("/start now", "second", "hello"):
        assert client.post("/hooks/s", json={"text": text}).status_code == 202
    work(until=finished(rt, 3))
    paths = [r.path for r in sink.requests]
    assert paths.count("/ask") == 1 and paths.count("/two") == 1 and paths.count("/other") == 1
    after = [r.json() for r in sink.requests if r.path == "/after"]
    # the case's name, else its index; "else"; a step after the block sees its steps
    assert sorted((a["case"] for a in after), key=str) == [1, "else", "start"]
    assert {a["case"]: a["ask"] for a in after}["start"] == 200
    assert all(status(e.status) == "succeeded" for e in executions(rt))
    # the steps inside a case are recorded as their own rows, under the block's
    ex = next(e for e in executions(rt) if any(r.step_id == "ask" for r in step_rows(rt, e.id)))
    rows = {r.step_id: r for r in step_rows(rt, ex.id)}
    assert rows["route"].output == {"case": "start"}
    assert rows["ask"].parent_position == rows["route"].position
    assert status(rows["ask"].status) == "succeeded"
    assert "two" not in rows and "other" not in rows
    body = api.get(f"/api/v1/executions/{ex.id}").get_json()
    ask = next(s for s in body["steps"] if s["step_id"] == "ask")
    assert ask["parent_position"] == rows["route"].position and ask["item_index"] is None


def test_a_branch_where_no_case_holds_and_no_else_is_null(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
rules:
  - name: r
    source: s
    actions:
      - id: route
        type: branch
        cases:
          - {{name: matched, when: {{path: $.body.ok, op: eq, value: true}},
             steps: [{{id: hit, type: webhook, url: "{sink.url}/hit"}}]}}
      - {{id: after, type: webhook, url: "{sink.url}/after",
         json: {{case: "{{{{ steps.route.case }}}}"}}}}
""")
    client.post("/hooks/s", json={"ok": False})
    work(until=finished(rt, 1))
    assert [r.path for r in sink.requests] == ["/after"]
    assert sink.requests[0].json() == {"case": None}


FOREACH = """
sources: [{{slug: shop}}]
rules:
  - name: ship
    source: shop
    actions:
      - id: each_item
        type: foreach
        items: $.body.line_items[*]
        as: line
        steps:
          - id: ship
            type: webhook
            url: "{url}/ship"
            json: {{sku: "{{{{ line.sku }}}}", index: "{{{{ loop.index }}}}"}}
            when: {{path: $.line.qty, op: gt, value: 0}}
          - id: note
            type: set
            values: {{shipped: "{{{{ steps.ship.json.id if steps.ship is defined else none }}}}"}}
      - id: summary
        type: webhook
        url: "{url}/summary"
        json:
          count: "{{{{ steps.each_item.count }}}}"
          notes: "{{{{ steps.each_item['items'] | map(attribute='note') | list }}}}"
          last: "{{{{ steps.ship.json.id }}}}"
"""


def test_foreach_runs_each_item_with_its_own_idempotency_key(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    apply(rt, tmp_path, FOREACH.format(url=sink.url))
    sink.handler = lambda rec: (Reply(json={"id": "ship-" + rec.json()["sku"]})
                                if rec.path == "/ship" else None)
    lines = [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}, {"sku": "c", "qty": 2}]
    client.post("/hooks/shop", json={"line_items": lines})
    work(until=finished(rt, 1))
    (ex,) = executions(rt)
    assert status(ex.status) == "succeeded", ex.error
    ships = [r for r in sink.requests if r.path == "/ship"]
    assert [r.json() for r in ships] == [{"sku": "a", "index": 0}, {"sku": "c", "index": 2}]
    # <execution>:<step>:<item index>
    assert [r.headers["idempotency-key"] for r in ships] == [f"{ex.id}:ship:0", f"{ex.id}:ship:2"]
    (summary,) = [r.json() for r in sink.requests if r.path == "/summary"]
    assert summary["count"] == 3
    assert summary["notes"] == [{"shipped": "ship-a"}, {"shipped": None}, {"shipped": "ship-c"}]
    assert summary["last"] == "ship-c"  # a sub-step's result is also steps.<id>: the last one's
    rows = step_rows(rt, ex.id)
    block = next(r for r in rows if r.step_id == "each_item")
    assert block.output["count"] == 3 and len(block.output["items"]) == 3
    assert block.output["items"][0]["ship"]["json"] == {"id": "ship-a"}
    subs = sorted((r.item_index, r.step_id, status(r.status)) for r in rows
                  if r.parent_position == block.position)
    assert subs == [(0, "note", "succeeded"), (0, "ship", "succeeded"),
                    (1, "note", "succeeded"), (1, "ship", "skipped"),
                    (2, "note", "succeeded"), (2, "ship", "succeeded")]


def test_foreach_over_more_than_max_items_fails_with_the_count(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
rules:
  - name: r
    source: s
    actions:
      - id: each
        type: foreach
        items: "{{{{ body.n | list }}}}"
        max_items: 3
        steps: [{{id: call, type: webhook, url: "{sink.url}/x"}}]
""")
    client.post("/hooks/s", json={"n": [1, 2, 3, 4, 5]})
    work(until=finished(rt, 1))
    (ex,) = executions(rt)
    assert status(ex.status) == "failed"
    assert "5 items, more than max_items (3)" in (ex.error or "")
    assert sink.requests == []


def test_set_values_keep_their_types(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
rules:
  - name: r
    source: s
    actions:
      - id: vars
        type: set
        values: {{total_eur: "{{{{ body.amount / 100 }}}}", vip: "{{{{ body.amount > 100000 }}}}",
                  label: "order {{{{ body.id }}}}"}}
      - {{id: out, type: webhook, url: "{sink.url}/out",
         json: {{t: "{{{{ steps.vars.total_eur }}}}", v: "{{{{ steps.vars.vip }}}}",
                 l: "{{{{ steps.vars.label }}}}"}}}}
""")
    client.post("/hooks/s", json={"amount": 250050, "id": 7})
    work(until=finished(rt, 1))
    assert sink.requests[0].json() == {"t": 2500.5, "v": True, "l": "order 7"}


def test_when_on_error_and_retry_work_inside_blocks(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
rules:
  - name: r
    source: s
    actions:
      - id: each
        type: foreach
        items: $.body.items
        steps:
          - id: call
            type: webhook
            url: "{sink.url}/call/{{{{ item }}}}"
            on_error: continue
            retry: {{max_attempts: 3, initial_s: 0.2, max_s: 0.5, backoff: fixed}}
      - {{id: after, type: webhook, url: "{sink.url}/after"}}
""")
    sink.queue("/call/flaky", Reply(status=503))  # transient once: retried, then 200
    sink.respond("/call/bad", Reply(status=400))  # permanent: on_error continue
    client.post("/hooks/s", json={"items": ["ok", "flaky", "bad", "last"]})
    work(until=finished(rt, 1), timeout=20)
    (ex,) = executions(rt)
    assert status(ex.status) == "succeeded", ex.error
    paths = [r.path for r in sink.requests]
    assert paths == ["/call/ok", "/call/flaky", "/call/flaky", "/call/bad", "/call/last",
                     "/after"]
    keys = [r.headers["idempotency-key"] for r in sink.requests if r.path == "/call/flaky"]
    assert keys == [f"{ex.id}:call:1"] * 2  # the retry carries its item's key
    rows = {(r.item_index, r.step_id): r for r in step_rows(rt, ex.id)}
    assert status(rows[(2, "call")].status) == "failed"
    assert rows[(1, "call")].attempts == 2


def test_a_failing_step_inside_a_block_fails_the_block_and_says_where(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
rules:
  - name: r
    source: s
    actions:
      - id: route
        type: branch
        cases:
          - name: go
            when: {{path: $.body.go, op: eq, value: true}}
            steps:
              - id: each
                type: foreach
                items: $.body.items[*]
                steps: [{{id: call, type: webhook, url: "{sink.url}/call/{{{{ item }}}}"}}]
      - {{id: after, type: webhook, url: "{sink.url}/after"}}
""")
    sink.respond("/call/b", Reply(status=404))
    client.post("/hooks/s", json={"go": True, "items": ["a", "b", "c"]})
    work(until=finished(rt, 1))
    (ex,) = executions(rt)
    assert status(ex.status) == "failed"
    assert ex.error is not None and ex.error.startswith("step route: step each: item 1: step call:")
    assert [r.path for r in sink.requests] == ["/call/a", "/call/b"]
    rows = {r.step_id: r for r in step_rows(rt, ex.id) if r.item_index in (None, 1)}
    assert status(rows["route"].status) == "failed" and status(rows["each"].status) == "failed"
    assert status(rows["after"].status) == "pending"


def test_nested_step_ids_are_unique_across_the_rule(api):  # type: ignore[no-untyped-def]
    assert api.post("/api/v1/sources", json={"slug": "s"}).status_code == 201
    rule = {"name": "dup", "source": "s", "actions": [
        {"id": "route", "type": "branch", "cases": [
            {"when": {"path": "$.body.a", "op": "exists"},
             "steps": [{"id": "call", "type": "webhook", "url": "http://127.0.0.1:9/x"}]}]},
        {"id": "call", "type": "webhook", "url": "http://127.0.0.1:9/y"}]}
    resp = api.post("/api/v1/rules", json=rule)
    assert resp.status_code == 422
    text = resp.get_data(as_text=True)
    assert "duplicate step id 'call'" in text
    assert "actions[0].cases[0].steps[0]" in text and "actions[1]" in text


def test_dry_run_shows_the_tree(api):  # type: ignore[no-untyped-def]
    assert api.post("/api/v1/sources", json={"slug": "s"}).status_code == 201
    rule = {"name": "tree", "source": "s", "actions": [
        {"id": "route", "type": "branch", "cases": [
            {"name": "many", "when": {"path": "$.body.items", "op": "exists"},
             "steps": [{"id": "each", "type": "foreach", "items": "$.body.items[*]",
                        "steps": [{"id": "call", "type": "webhook",
                                   "url": "http://127.0.0.1:9/{{ item }}/{{ loop.index }}"}]}]}],
         "else": [{"id": "none", "type": "set", "values": {"x": 1}}]}]}
    resp = api.post("/api/v1/rules/test", json={"rule": rule,
                                                "event": {"body": {"items": ["p", "q"]}}})
    assert resp.status_code == 200, resp.get_json()
    (route,) = resp.get_json()["steps"]
    assert route["case"] == "many"
    (each,) = route["steps"]
    assert each["type"] == "foreach" and each["rendered"]["count"] == 2
    assert [[s["rendered"]["url"] for s in item] for item in each["items"]] == [
        ["http://127.0.0.1:9/p/0"], ["http://127.0.0.1:9/q/1"]]



def test_a_dry_run_gives_the_steps_after_a_foreach_its_items_results(api):  # type: ignore[no-untyped-def]
    """As in a run, steps.<foreach>.items holds each item's results by step id, and
    the steps inside are seen after it (the last item's)."""
    assert api.post("/api/v1/sources", json={"slug": "s"}).status_code == 201
    rule = {"name": "collect", "source": "s", "actions": [
        {"id": "each", "type": "foreach", "items": "$.body.lines[*]", "as": "line",
         "steps": [{"id": "price", "type": "set",
                    "values": {"total": "{{ line.qty * line.unit }}"}}]},
        {"id": "sum", "type": "set", "values": {
            "totals": "{{ steps.each['items'] | map(attribute='price') "
                      "| map(attribute='total') | list }}",
            "count": "{{ steps.each.count }}", "last": "{{ steps.price.total }}"}}]}
    body = {"lines": [{"qty": 2, "unit": 5}, {"qty": 1, "unit": 7}]}
    resp = api.post("/api/v1/rules/test", json={"rule": rule, "event": {"body": body}})
    assert resp.status_code == 200, resp.get_json()
    each, total = resp.get_json()["steps"]
    assert total.get("error") is None, total
    assert total["rendered"]["values"] == {"totals": [10, 7], "count": 2, "last": 7}


EMIT = """
sources: [{{slug: push}}, {{slug: deploys}}]
rules:
  - name: on-push
    source: push
    actions:
      - id: next
        type: emit
        source: deploys
        json: {{repo: "{{{{ body.repo }}}}", sha: "{{{{ body.sha }}}}"}}
      - {{id: told, type: webhook, url: "{url}/told",
         json: {{id: "{{{{ steps.next.event_id }}}}"}}}}
  - name: deploy
    source: deploys
    actions:
      - {{id: go, type: webhook, url: "{url}/deploy",
         json: {{repo: "{{{{ body.repo }}}}", parent: "{{{{ event.parent_id }}}}"}}}}
"""


def test_emit_raises_an_event_on_another_source_linked_to_its_parent(  # type: ignore[no-untyped-def]
        rt, client, api, sink, work, tmp_path, user):
    apply(rt, tmp_path, EMIT.format(url=sink.url))
    parent = client.post("/hooks/push", json={"repo": "a/b", "sha": "abc"}).get_json()["event_id"]
    work(until=finished(rt, 2))
    told = next(r.json() for r in sink.requests if r.path == "/told")
    deploy = next(r.json() for r in sink.requests if r.path == "/deploy")
    assert deploy == {"repo": "a/b", "parent": parent}
    child = api.get(f"/api/v1/events/{told['id']}").get_json()
    assert child["event"]["parent_id"] == parent and child["event"]["source"] == "deploys"
    assert child["event"]["emitted"] is True
    assert "x-hookwise-emitted-by" in child["event"]["headers"]
    assert api.get(f"/api/v1/events/{parent}").get_json()["event"]["emitted_events"] == \
        [told["id"]]
    # the event page links both ways
    login(client)
    page = client.get(f"/events/{told['id']}").get_data(as_text=True)
    assert f"/events/{parent}" in page
    page = client.get(f"/events/{parent}").get_data(as_text=True)
    assert f"/events/{told['id']}" in page


def test_an_emit_loop_stops_at_the_depth_cap_with_the_reason(  # type: ignore[no-untyped-def]
        rt, client, api, work, tmp_path, user):
    apply(rt, tmp_path, """
sources: [{slug: loop}]
rules:
  - name: again
    source: loop
    actions:
      - {id: again, type: emit, source: loop, json: {n: "{{ (body.n or 0) + 1 }}"}}
""")
    client.post("/hooks/loop", json={"n": 0})
    work(until=finished(rt, 9), timeout=30)
    exs = executions(rt)
    assert len(exs) == 9
    assert [status(e.status) for e in exs].count("succeeded") == 8
    (last,) = [e for e in exs if status(e.status) == "failed"]
    assert "emit chain deeper than 8" in (last.error or "")
    events = api.get("/api/v1/events?limit=50").get_json()["items"]
    assert len(events) == 9  # the webhook's and 8 emitted
    login(client)
    page = client.get(f"/events/{last.event_id}").get_data(as_text=True)
    assert "emit chain deeper than 8" in page


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_foreach_on_postgresql(rt, client, sink, work, tmp_path):  # type: ignore[no-untyped-def]
    apply(rt, tmp_path, FOREACH.format(url=sink.url))
    sink.respond("/ship", Reply(json={"id": "x"}))
    client.post("/hooks/shop", json={"line_items": [{"sku": "a", "qty": 1},
                                                    {"sku": "b", "qty": 1}]})
    work(until=finished(rt, 1))
    (ex,) = executions(rt)
    assert status(ex.status) == "succeeded", ex.error
    assert [r.headers["idempotency-key"] for r in sink.requests if r.path == "/ship"] == \
        [f"{ex.id}:ship:0", f"{ex.id}:ship:1"]


def test_the_event_page_shows_the_tree(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path, user):
    apply(rt, tmp_path, BRANCH.format(url=sink.url).replace(
        "sources: [{slug: s}]", "sources: [{slug: s}, {slug: shop}]")
        + FOREACH.format(url=sink.url).split("rules:", 1)[1])
    first = client.post("/hooks/s", json={"text": "/start"}).get_json()["event_id"]
    second = client.post("/hooks/shop", json={"line_items": [
        {"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}]}).get_json()["event_id"]
    sink.respond("/ship", Reply(json={"id": "x"}))
    work(until=finished(rt, 2))
    login(client)
    page = client.get(f"/events/{first}").get_data(as_text=True)
    assert "case <strong>start</strong>" in page
    # the case's step is listed inside the branch's row, before the step after it
    assert page.index('step-children') < page.index(">ask<") < page.index(">after<")
    page = client.get(f"/events/{second}").get_data(as_text=True)
    assert "2 item(s)" in page
    assert page.index("item 0") < page.index("item 1") < page.index(">summary<")
    assert page.count('<span class="step-id">ship</span>') == 2
    assert page.count('<span class="step-id">note</span>') == 2


def test_foreach_concurrency_runs_items_in_parallel(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
rules:
  - name: r
    source: s
    actions:
      - id: each
        type: foreach
        items: $.body.n
        concurrency: 4
        steps:
          - {{id: call, type: webhook, url: "{sink.url}/call", json: {{n: "{{{{ item }}}}"}}}}
          - {{id: seen, type: set, values: {{n: "{{{{ steps.call.json.n }}}}"}}}}
      - {{id: after, type: webhook, url: "{sink.url}/after",
         json: {{ns: "{{{{ steps.each['items'] | map(attribute='seen') | map(attribute='n')
                          | list }}}}", last: "{{{{ steps.seen.n }}}}"}}}}
""")
    sink.handler = lambda rec: (Reply(json={"n": rec.json()["n"]}, delay=0.4)
                                if rec.path == "/call" else None)
    client.post("/hooks/s", json={"n": list(range(8))})
    work(until=finished(rt, 1), timeout=20)
    (ex,) = executions(rt)
    assert status(ex.status) == "succeeded", ex.error
    assert sink.max_in_flight >= 3  # four items at a time (eight calls of 0.4 s)
    calls = [r for r in sink.requests if r.path == "/call"]
    assert sorted(r.json()["n"] for r in calls) == list(range(8))
    assert {r.headers["idempotency-key"] for r in calls} == {f"{ex.id}:call:{i}" for i in range(8)}
    # each item saw its own call's result; the results are in item order
    (after,) = [r.json() for r in sink.requests if r.path == "/after"]
    assert after == {"ns": list(range(8)), "last": 7}


def test_a_reply_inside_a_branch_answers_the_caller(  # type: ignore[no-untyped-def]
        rt, client, work, tmp_path):
    apply(rt, tmp_path, """
sources:
  - slug: bot
    respond: {mode: reply, timeout_ms: 5000, fallback: {status: 200, json: {text: fallback}}}
rules:
  - name: talk
    source: bot
    actions:
      - id: route
        type: branch
        cases:
          - name: hello
            when: {path: $.body.text, op: eq, value: hi}
            steps:
              - {id: vars, type: set, values: {who: "{{ body.user }}"}}
              - {id: answer, type: reply, json: {text: "hello {{ steps.vars.who }}"}}
""")
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(
        resp=client.post("/hooks/bot", json={"text": "hi", "user": "ann"})))
    t.start()
    work(until=lambda: not t.is_alive(), timeout=10)
    t.join()
    assert result["resp"].get_json() == {"text": "hello ann"}


def test_retrying_a_failed_foreach_runs_only_the_failed_item_again(  # type: ignore[no-untyped-def]
        rt, client, api, sink, work, tmp_path):
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
rules:
  - name: r
    source: s
    actions:
      - id: each
        type: foreach
        items: $.body.items[*]
        steps: [{{id: call, type: webhook, url: "{sink.url}/call/{{{{ item }}}}"}}]
      - {{id: after, type: webhook, url: "{sink.url}/after"}}
""")
    sink.queue("/call/b", Reply(status=404))  # fails once; the retry is answered 200
    client.post("/hooks/s", json={"items": ["a", "b", "c"]})
    work(until=finished(rt, 1))
    (ex,) = executions(rt)
    assert status(ex.status) == "failed" and "item 1: step call" in (ex.error or "")
    assert [r.path for r in sink.requests] == ["/call/a", "/call/b"]
    assert api.post(f"/api/v1/executions/{ex.id}/retry").status_code in (200, 202)
    work(until=lambda: status(executions(rt)[0].status) == "succeeded")
    assert [r.path for r in sink.requests] == ["/call/a", "/call/b", "/call/b", "/call/c",
                                               "/after"]
    keys = [r.headers["idempotency-key"] for r in sink.requests if r.path == "/call/b"]
    assert keys == [f"{ex.id}:call:1"] * 2


def test_a_block_with_on_error_continue_lets_the_chain_go_on(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
rules:
  - name: r
    source: s
    actions:
      - id: route
        type: branch
        on_error: continue
        cases:
          - when: {{path: $.body.go, op: eq, value: true}}
            steps: [{{id: call, type: webhook, url: "{sink.url}/bad"}}]
      - {{id: after, type: webhook, url: "{sink.url}/after",
         json: {{case: "{{{{ steps.route.case }}}}"}}}}
""")
    sink.respond("/bad", Reply(status=400))
    client.post("/hooks/s", json={"go": True})
    work(until=finished(rt, 1))
    (ex,) = executions(rt)
    assert status(ex.status) == "succeeded", ex.error
    assert [r.path for r in sink.requests] == ["/bad", "/after"]
    assert sink.requests[1].json() == {"case": 0}
    rows = {r.step_id: r for r in step_rows(rt, ex.id)}
    assert status(rows["route"].status) == "failed"
    assert (rows["route"].error or "").startswith("step call: ")


def test_hookwise_test_prints_the_tree(tmp_path):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from cli.rule_files import test_cmd

    (tmp_path / "r.yaml").write_text(FOREACH.format(url="https://ship.example"))
    (tmp_path / "p.json").write_text('{"line_items": [{"sku": "a", "qty": 1}, {"sku": "b"}]}')
    out = CliRunner().invoke(test_cmd, [str(tmp_path / "r.yaml"), "--payload",
                                        str(tmp_path / "p.json")]).output
    assert "step each_item (foreach): 2 item(s)" in out
    assert out.index("item 0:") < out.index('"sku": "a"') < out.index("item 1:")
    assert "step ship (webhook): skipped" in out  # item 1 has no qty
