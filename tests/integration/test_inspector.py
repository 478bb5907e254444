"""The built-in request inspector (issue 14, item 14): ``/inspect/<name>`` records what it
receives (bounded, credentials redacted) and the UI shows it; a webhook step reaches this
instance's own inspector without HOOKWISE_EGRESS_ALLOW — that path only; the builder's
first rule targets it. Here the egress allow list is EMPTY (the other tests allow
127.0.0.0/8), so only the inspector exception can let a loopback call through."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session, select

from engine.outbound.instance import clear_record, is_own_inspector, write_record
from engine.store import inspector
from engine.store.models import Execution, ExecutionStatus, StepRun
from engine.store.rule_files import apply_paths
from tests.integration.test_ui_pages import log_in


@pytest.fixture
def env(env):  # type: ignore[no-untyped-def]
    return {**env, "HOOKWISE_EGRESS_ALLOW": ""}


def test_requests_are_recorded_and_shown(rt, client, user):  # type: ignore[no-untyped-def]
    resp = client.post("/inspect/demo?x=1", json={"hello": "world"},
                       headers={"Authorization": "Bearer sekrit", "X-Trace": "t-1"})
    assert resp.status_code == 200
    answer = resp.get_json()
    assert answer["ok"] is True and answer["see"].endswith("/inspector/demo")
    assert client.put("/inspect/demo", data=b"plain text").status_code == 200

    [second, first] = inspector.requests(rt.db, "demo")
    assert first["method"] == "POST" and json.loads(first["body"]) == {"hello": "world"}
    assert first["query"] == {"x": "1"} and first["headers"]["x-trace"] == "t-1"
    assert first["headers"]["authorization"] == "[redacted]"
    assert second["method"] == "PUT" and second["body"] == "plain text"

    assert client.get("/inspector/demo").status_code == 302  # the viewer needs a login
    log_in(client)
    page = client.get("/inspector/demo").get_data(as_text=True)
    assert "hello" in page and "world" in page and "t-1" in page and "sekrit" not in page
    assert page.count('data-testid="inspected-request"') == 2
    index = client.get("/inspector").get_data(as_text=True)
    assert "/inspector/demo" in index
    assert client.get("/inspector?name=other").headers["Location"].endswith("/inspector/other")
    assert "Nothing received yet" in client.get("/inspector/other").get_data(as_text=True)


def test_the_record_is_bounded(rt, client):  # type: ignore[no-untyped-def]
    for i in range(inspector.KEEP_PER_NAME + 5):
        client.post("/inspect/many", json={"i": i})
    kept = inspector.requests(rt.db, "many", limit=1000)
    assert len(kept) == inspector.KEEP_PER_NAME
    assert json.loads(kept[0]["body"]) == {"i": inspector.KEEP_PER_NAME + 4}
    big = b"x" * (inspector.MAX_BODY_BYTES + 10)
    client.post("/inspect/big", data=big, content_type="text/plain")
    [row] = inspector.requests(rt.db, "big")
    assert len(row["body"]) == inspector.MAX_BODY_BYTES and row["body_size"] == len(big)


def test_a_bad_name_is_refused(client):  # type: ignore[no-untyped-def]
    resp = client.post("/inspect/-bad", json={})
    assert resp.status_code == 404 and resp.get_json()["error"] == "bad_name"


RULES = """
sources:
  - slug: demo
rules:
  - name: to-inspector
    source: demo
    actions:
      - id: out
        type: webhook
        url: "TARGET"
        json: {echo: "{{ body.msg | upper }}"}
"""


def _deliver(rt, client, work, tmp_path, target: str) -> tuple[Execution, StepRun]:  # type: ignore[no-untyped-def]
    f = tmp_path / "rules.yaml"
    f.write_text(RULES.replace("TARGET", target))
    apply_paths(rt.catalog, [f])
    assert client.post("/hooks/demo", json={"msg": "hi"}).status_code == 202

    def done() -> bool:
        with Session(rt.db) as s:
            ex = s.exec(select(Execution)).first()
            return ex is not None and ex.status in (ExecutionStatus.succeeded,
                                                    ExecutionStatus.failed)

    work(until=done)
    with Session(rt.db) as s:
        ex = s.exec(select(Execution)).one()
        step = s.exec(select(StepRun).where(StepRun.execution_id == ex.id)).one()
    return ex, step


def test_a_step_reaches_the_own_inspector_without_the_egress_allow_list(  # type: ignore[no-untyped-def]
        rt, client, live_server, work, tmp_path):
    port = urlsplit(live_server).port
    assert port
    write_record(rt.settings.data_dir, "127.0.0.1", port, pid=os.getpid())
    try:
        ex, step = _deliver(rt, client, work, tmp_path, f"{live_server}/inspect/demo")
    finally:
        clear_record(rt.settings.data_dir)
    assert ex.status == ExecutionStatus.succeeded, step.error
    assert step.output["status"] == 200 and step.output["json"]["ok"] is True
    [got] = inspector.requests(rt.db, "demo")
    assert json.loads(got["body"]) == {"echo": "HI"}


@pytest.mark.parametrize("path", ["/inspector/demo", "/hooks/demo", "/inspect/demo/x",
                                  "/inspect/%64emo", "/api/v1/rules"])
def test_every_other_path_of_the_instance_stays_refused(  # type: ignore[no-untyped-def]
        rt, client, live_server, work, tmp_path, path):
    port = urlsplit(live_server).port
    assert port
    write_record(rt.settings.data_dir, "127.0.0.1", port, pid=os.getpid())
    try:
        ex, step = _deliver(rt, client, work, tmp_path, f"{live_server}{path}")
    finally:
        clear_record(rt.settings.data_dir)
    assert ex.status == ExecutionStatus.failed
    assert "egress refused" in (step.error or "")


def test_without_a_running_serve_the_inspector_is_not_exempt(  # type: ignore[no-untyped-def]
        rt, client, live_server, work, tmp_path):
    ex, step = _deliver(rt, client, work, tmp_path, f"{live_server}/inspect/demo")
    assert ex.status == ExecutionStatus.failed and "egress refused" in (step.error or "")


def test_own_inspector_urls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    write_record(tmp_path, "0.0.0.0", 8123, pid=os.getpid())
    own = [
        "http://127.0.0.1:8123/inspect/demo", "http://localhost:8123/inspect/a_b-1?x=1",
        "http://[::1]:8123/inspect/demo",
    ]
    other = [
        "http://127.0.0.1:8124/inspect/demo", "https://127.0.0.1:8123/inspect/demo",
        "http://10.0.0.1:8123/inspect/demo", "http://u:p@127.0.0.1:8123/inspect/demo",
        "http://127.0.0.1:8123/inspect/../api", "http://127.0.0.1:8123/inspect/de%2Fmo",
        "http://127.0.0.1:8123/inspect/", "http://127.0.0.1:8123/inspect/demo/",
        "http://127.0.0.1:8123/inspector/demo", "http://127.0.0.1:8123/hooks/demo",
        "http://127.0.0.1:8123//inspect/demo",
    ]
    assert [u for u in own if not is_own_inspector(u, tmp_path)] == []
    assert [u for u in other if is_own_inspector(u, tmp_path)] == []
    write_record(tmp_path, "127.0.0.1", 8123, pid=2 ** 22 + 12345)  # no such process
    assert not is_own_inspector(own[0], tmp_path)


def test_the_builders_first_rule_targets_the_inspector(rt, client, user, tmp_path):  # type: ignore[no-untyped-def]
    log_in(client)
    f = tmp_path / "s.yaml"
    f.write_text("sources:\n  - slug: shop\n")
    apply_paths(rt.catalog, [f])
    page = client.get("/rules/new").get_data(as_text=True)
    initial = json.loads(page.split('id="rb-initial">')[1].split("</script>")[0])
    [step] = initial["rule"]["actions"]
    assert step["type"] == "webhook" and step["url"] == "http://localhost/inspect/shop"
    f.write_text(RULES.replace("TARGET", "https://example.org/x"))
    apply_paths(rt.catalog, [f])
    page = client.get("/rules/new").get_data(as_text=True)
    initial = json.loads(page.split('id="rb-initial">')[1].split("</script>")[0])
    assert initial["rule"]["actions"] == []
