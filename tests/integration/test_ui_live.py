"""Issue 14, items 6-8 through the API and the UI (Flask test client, real Redis, a real
RQ worker, a loopback HTTP sink): an event's outcome and the outcome filter, retry a
waiting step now, cancel a waiting execution, bulk retry with its progress, and the
fragments the live pages poll."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rq.registry import ScheduledJobRegistry

from engine.store.rule_files import apply_paths
from tests.integration.test_ui_pages import csrf_of, log_in
from tests.servers import Reply

EXECUTIONS = "/api/v1/executions"
EVENTS = "/api/v1/events"

RULES = """
sources: [{slug: s}, {slug: quiet}]
rules:
  - name: fwd
    source: s
    when: {path: $.body.kind, op: exists}
    actions:
      - id: out
        type: webhook
        url: "SINK/{{ body.kind }}"
        json: {n: "{{ body.n }}"}
        retry: {max_attempts: 5, backoff: fixed, initial_s: 3600, max_s: 3600}
"""


@pytest.fixture
def rules(rt, sink, tmp_path: Path):  # type: ignore[no-untyped-def]
    f = tmp_path / "rules.yaml"
    f.write_text(RULES.replace("SINK", sink.url))
    apply_paths(rt.catalog, [f])


def post(client, kind: str | None, n: int = 0, source: str = "s") -> str:  # type: ignore[no-untyped-def]
    body = {"n": n} if kind is None else {"kind": kind, "n": n}
    r = client.post(f"/hooks/{source}", json=body)
    assert r.status_code == 202, r.data
    return str(r.get_json()["event_id"])


def execution_of(api, event_id: str) -> dict:  # type: ignore[no-untyped-def]
    [ex] = api.get(f"{EVENTS}/{event_id}").get_json()["executions"]
    return ex  # type: ignore[no-any-return]


def scheduled_for(rt, execution_id: str) -> int:  # type: ignore[no-untyped-def]
    from rq.job import Job
    from rq.serializers import JSONSerializer

    reg = ScheduledJobRegistry(queue=rt.queue)
    jobs = Job.fetch_many(reg.get_job_ids(), connection=rt.redis, serializer=JSONSerializer)
    return sum(1 for j in jobs if j is not None and list(j.args) == [execution_id])


@pytest.fixture
def mixed(rules, client, sink, work):  # type: ignore[no-untyped-def]
    """One event of each outcome: succeeded, failed (400), waiting (500: retried in an
    hour), no match (quiet has no rule), pending (not matched yet)."""
    sink.respond("/ok", Reply(json={"ok": True}))
    sink.respond("/bad", Reply(status=400))
    sink.respond("/later", Reply(status=500))
    ids = {"succeeded": post(client, "ok"), "failed": post(client, "bad"),
           "waiting": post(client, "later"), "no_match": post(client, None, source="quiet")}
    work()
    ids["pending"] = post(client, "ok", 9)
    return ids


# -- item 8: outcome ---------------------------------------------------------------------
def test_each_event_reports_its_worst_outcome_and_the_list_filters_by_it(api, mixed, ui):  # type: ignore[no-untyped-def]
    items = api.get(EVENTS).get_json()["items"]
    assert {i["id"]: i["outcome"] for i in items} == {v: k for k, v in mixed.items()}
    for outcome, event_id in mixed.items():
        got = api.get(f"{EVENTS}?outcome={outcome}").get_json()
        assert [i["id"] for i in got["items"]] == [event_id], outcome
        assert got["total"] == 1
        assert api.get(f"{EVENTS}/{event_id}").get_json()["event"]["outcome"] == outcome
    # the failed event's own status stays "processed": it was matched
    assert api.get(f"{EVENTS}/{mixed['failed']}").get_json()["event"]["status"] == "processed"
    bad = api.get(f"{EVENTS}?outcome=broken")
    assert bad.status_code == 422 and "outcome" in bad.get_json()["message"]

    # the UI: the badge is the outcome, and the Outcome filter narrows the list
    page = ui.get("/events?outcome=failed").get_data(as_text=True)
    assert mixed["failed"] in page and mixed["succeeded"] not in page
    assert re.search(r'badge badge-failed"[^>]*>failed<', page)
    page = ui.get("/events").get_data(as_text=True)
    assert re.search(r'badge badge-no_match"[^>]*>no match<', page)
    assert re.search(r'badge badge-waiting"[^>]*>waiting<', page)
    event_page = ui.get(f"/events/{mixed['failed']}").get_data(as_text=True)
    assert re.search(r'id="event-outcome"[^>]*>failed<', event_page)


def test_a_retry_that_succeeds_turns_the_badge_green(api, mixed, sink, work):  # type: ignore[no-untyped-def]
    ex = execution_of(api, mixed["failed"])
    sink.respond("/bad", Reply(json={"ok": True}))
    assert api.post(f"{EXECUTIONS}/{ex['id']}/retry").status_code == 202
    assert api.get(f"{EVENTS}/{mixed['failed']}").get_json()["event"]["outcome"] == "waiting"
    work(until=lambda: execution_of(api, mixed["failed"])["status"] == "succeeded")
    assert api.get(f"{EVENTS}/{mixed['failed']}").get_json()["event"]["outcome"] == "succeeded"


# -- item 7: retry now, cancel ------------------------------------------------------------
def test_retry_now_runs_a_waiting_step_at_once_and_clears_its_schedule(api, rt, mixed, sink,  # type: ignore[no-untyped-def]
                                                                       work):
    ex = execution_of(api, mixed["waiting"])
    assert ex["status"] == "waiting" and ex["steps"][0]["next_attempt_at"]
    assert scheduled_for(rt, ex["id"]) == 1
    work()  # the retry is an hour away: a worker does nothing now
    assert execution_of(api, mixed["waiting"])["status"] == "waiting"

    sink.respond("/later", Reply(json={"ok": True}))
    r = api.post(f"{EXECUTIONS}/{ex['id']}/retry-now")
    assert r.status_code == 202, r.get_json()
    assert r.get_json() == {"execution_id": ex["id"], "step_id": "out", "status": "waiting"}
    assert scheduled_for(rt, ex["id"]) == 0  # the hour-away job is gone
    work(until=lambda: execution_of(api, mixed["waiting"])["status"] == "succeeded")
    step = execution_of(api, mixed["waiting"])["steps"][0]
    assert step["attempts"] == 2 and step["next_attempt_at"] is None

    again = api.post(f"{EXECUTIONS}/{ex['id']}/retry-now")
    assert again.status_code == 409 and "succeeded" in again.get_json()["message"]
    assert api.post(f"{EXECUTIONS}/exe_nope/retry-now").status_code == 404


def test_cancel_ends_a_waiting_execution_and_its_schedule(api, rt, mixed, work):  # type: ignore[no-untyped-def]
    ex = execution_of(api, mixed["waiting"])
    r = api.post(f"{EXECUTIONS}/{ex['id']}/cancel")
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"execution_id": ex["id"], "status": "failed",
                            "error": "step out: cancelled by token:tests"}
    got = api.get(f"{EXECUTIONS}/{ex['id']}").get_json()
    assert got["status"] == "failed" and got["finished_at"]
    assert got["steps"][0]["status"] == "failed"
    assert got["steps"][0]["error"] == "cancelled by token:tests"
    assert got["steps"][0]["next_attempt_at"] is None
    assert scheduled_for(rt, ex["id"]) == 0
    assert api.get(f"{EVENTS}/{mixed['waiting']}").get_json()["event"]["outcome"] == "failed"

    again = api.post(f"{EXECUTIONS}/{ex['id']}/cancel")
    assert again.status_code == 409 and "failed" in again.get_json()["message"]
    ok = execution_of(api, mixed["succeeded"])
    assert api.post(f"{EXECUTIONS}/{ok['id']}/cancel").status_code == 409
    assert api.post(f"{EXECUTIONS}/exe_nope/cancel").status_code == 404


def test_the_event_page_offers_retry_now_and_cancel(ui, api, mixed, sink, work):  # type: ignore[no-untyped-def]
    ex = execution_of(api, mixed["waiting"])
    page = ui.get(f"/events/{mixed['waiting']}").get_data(as_text=True)
    assert f'action="/executions/{ex["id"]}/retry-now"' in page
    assert f'action="/executions/{ex["id"]}/cancel"' in page
    sink.respond("/later", Reply(json={"ok": True}))
    r = ui.post(f"/executions/{ex['id']}/retry-now", follow_redirects=True)
    assert "Step “out” of “fwd” runs now" in r.get_data(as_text=True)
    work(until=lambda: execution_of(api, mixed["waiting"])["status"] == "succeeded")
    page = ui.get(f"/events/{mixed['waiting']}").get_data(as_text=True)
    assert "/retry-now" not in page and f"/executions/{ex['id']}/cancel" not in page

    # cancel from the page: a fresh waiting one
    sink.respond("/later", Reply(status=500))
    event_id = post(ui, "later", 5)
    work()
    ex2 = execution_of(api, event_id)
    r = ui.post(f"/executions/{ex2['id']}/cancel", follow_redirects=True)
    assert "“fwd” cancelled" in r.get_data(as_text=True)
    got = api.get(f"{EXECUTIONS}/{ex2['id']}").get_json()
    assert got["status"] == "failed" and got["error"] == "step out: cancelled by ada@example.test"


# -- item 7: bulk retry ----------------------------------------------------------------
def test_bulk_retry_of_the_filtered_failed_executions_with_progress(api, rules, client, sink,  # type: ignore[no-untyped-def]
                                                                    work):
    sink.respond("/bad", Reply(status=400))
    failed = [post(client, "bad", n) for n in range(3)]
    sink.respond("/ok", Reply(json={"ok": True}))
    ok = post(client, "ok")
    work()
    sink.respond("/bad", Reply(json={"ok": True}))
    r = api.post(f"{EXECUTIONS}/retry", json={"source": "s"})
    assert r.status_code == 202, r.get_json()
    out = r.get_json()
    assert out["total"] == 3 and out["skipped"] == []
    assert sorted(out["retried"]) == sorted(execution_of(api, e)["id"] for e in failed)
    progress = api.get(f"{EXECUTIONS}/batches/{out['batch']}").get_json()
    assert progress["total"] == 3 and progress["finished"] == 0 and not progress["done"]
    work(until=lambda: api.get(f"{EXECUTIONS}/batches/{out['batch']}").get_json()["done"])
    progress = api.get(f"{EXECUTIONS}/batches/{out['batch']}").get_json()
    assert progress == {"batch": out["batch"], "total": 3, "finished": 3, "succeeded": 3,
                        "failed": 0, "open": 0, "done": True, "percent": 100}
    assert execution_of(api, ok)["status"] == "succeeded"

    # by ids: one that did not fail is skipped with the reason
    ok_ex = execution_of(api, ok)["id"]
    r = api.post(f"{EXECUTIONS}/retry", json={"execution_ids": [ok_ex]})
    assert r.get_json()["total"] == 0
    assert r.get_json()["skipped"][0]["execution_id"] == ok_ex
    assert "not failed" in r.get_json()["skipped"][0]["reason"]
    assert api.get(f"{EXECUTIONS}/batches/nope").status_code == 404
    bad = api.post(f"{EXECUTIONS}/retry", json={"path": "$[?("})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["loc"] == "path"


def test_bulk_retry_from_the_events_list(ui, api, rules, client, sink, work):  # type: ignore[no-untyped-def]
    sink.respond("/bad", Reply(status=400))
    failed = [post(client, "bad", n) for n in range(2)]
    work()
    page = ui.get("/events?outcome=failed").get_data(as_text=True)
    assert "Retry failed executions" in page
    sink.respond("/bad", Reply(json={"ok": True}))
    r = ui.post("/events/retry-failed", data={"outcome": "failed", "source": "s"},
                headers={"HX-Request": "true", "HX-Target": "bulk-retry"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" not in html
    assert "Retrying 2 failed executions" in html and "<progress" in html
    batch = re.search(r'/events/retry-failed/(\w+)"', html).group(1)  # type: ignore[union-attr]
    assert 'hx-trigger="every 1s"' in html
    work(until=lambda: all(execution_of(api, e)["status"] == "succeeded" for e in failed))
    done = ui.get(f"/events/retry-failed/{batch}", headers={"HX-Request": "true"})
    text = done.get_data(as_text=True)
    assert "Bulk retry finished" in text and "2 of 2 finished" in text
    assert "hx-trigger" not in text  # it stops polling
    none_left = ui.post("/events/retry-failed", data={"source": "s"},
                        headers={"HX-Request": "true"})
    assert "nothing to retry" in none_left.get_data(as_text=True)


# -- item 6: the fragments the live pages poll ------------------------------------------
def test_live_regions_and_their_fragments(ui, mixed):  # type: ignore[no-untyped-def]
    page = ui.get("/events?source=s").get_data(as_text=True)
    assert re.search(r'id="event-list"[^>]*data-live="here"[^>]*hx-trigger="every 3s"', page)
    part = ui.get("/events?source=s", headers={"HX-Request": "true",
                                               "HX-Target": "event-list"})
    text = part.get_data(as_text=True)
    assert "<html" not in text and f'data-id="{mixed["failed"]}"' in text
    assert mixed["no_match"] not in text  # the filter is kept

    event_id = mixed["failed"]
    page = ui.get(f"/events/{event_id}").get_data(as_text=True)
    assert re.search(r'id="event-live" data-live hx-get="/events/' + event_id, page)
    part = ui.get(f"/events/{event_id}", headers={"HX-Request": "true",
                                                  "HX-Target": "event-live"})
    text = part.get_data(as_text=True)
    assert "<html" not in text and "Retry from failed step" in text
    assert 'id="dashboard-live" data-live' in ui.get("/").get_data(as_text=True)


@pytest.fixture
def ui(client, user):  # type: ignore[no-untyped-def]
    """The test client, logged in through the login form; its POSTs carry the CSRF
    token of the events page."""
    log_in(client)
    token = csrf_of(client.get("/events").get_data(as_text=True))
    plain_post = client.post

    def post_with_token(url, data=None, headers=None, **kw):  # type: ignore[no-untyped-def]
        if url.startswith("/hooks/"):
            return plain_post(url, data=data, headers=headers, **kw)
        return plain_post(url, data={**(data or {}), "csrf_token": token},
                          headers={**(headers or {}), "X-CSRFToken": token}, **kw)

    client.post = post_with_token
    return client


# -- item 10: checks at save --------------------------------------------------------------
def _rule(**kw):  # type: ignore[no-untyped-def]
    return {"name": "r", "source": "s",
            "actions": [{"id": "out", "type": "webhook", "url": "https://h.example/x"}], **kw}


@pytest.mark.parametrize(("url", "words"), [
    ("not a url", "url 'not a url' is not a web address: it does not start with http:// or "
                  "https://"),
    ("ftp://x", "url 'ftp://x' is not a web address: it starts with ftp://, not http://"),
    ("https://", "url 'https://' has no host name after https://"),
])
def test_a_webhook_url_that_cannot_work_is_refused_at_save(api, rules, url, words):  # type: ignore[no-untyped-def]
    r = api.post("/api/v1/rules", json=_rule(actions=[{"id": "out", "type": "webhook",
                                                        "url": url}]))
    assert r.status_code == 422, r.get_json()
    [err] = r.get_json()["errors"]
    assert err["loc"] == "actions[0]" and words in err["message"]


@pytest.mark.parametrize("url", ["https://h.example/{{ body.id }}", "{{ secrets.HOOK_URL }}",
                                 "http{{ body.tls }}://h.example/"])
def test_url_templates_whose_fixed_part_fits_are_accepted(api, rules, url):  # type: ignore[no-untyped-def]
    r = api.post("/api/v1/rules", json=_rule(actions=[{"id": "out", "type": "webhook",
                                                        "url": url}]))
    assert r.status_code == 201, r.get_json()


def test_oversized_fields_are_refused_naming_the_field(api, rules):  # type: ignore[no-untyped-def]
    huge = "v" * 300_000
    r = api.post("/api/v1/rules", json=_rule(when={"path": "$.body.a", "op": "eq",
                                                    "value": huge}))
    assert r.status_code == 422, r.get_json()
    [err] = r.get_json()["errors"]
    assert err["loc"] == "when.value"
    assert err["message"].startswith("this condition value is 293 KB; a rule's field holds "
                                     "at most 64 KB")
    assert len(str(err["value"])) < 1000  # the answer does not echo 300 KB back
    r = api.post("/api/v1/rules", json=_rule(actions=[{
        "id": "out", "type": "webhook", "url": "https://h.example/", "body": "b" * 70_000}]))
    [err] = r.get_json()["errors"]
    assert err["loc"] == "actions[0].body" and "this template is 68 KB" in err["message"]
    ok = api.post("/api/v1/rules", json=_rule(when={"path": "$.body.a", "op": "eq",
                                                     "value": "v" * 60_000}))
    assert ok.status_code == 201


# -- item 11: messages for people, the styled 404 -----------------------------------------
def test_length_errors_are_sentences_about_the_rule(api, rules):  # type: ignore[no-untyped-def]
    r = api.post("/api/v1/rules", json=_rule(actions=[]))
    [err] = r.get_json()["errors"]
    assert err["message"] == ("must have at least 1 item (it has none): a rule needs at "
                              "least one action")
    r = api.post("/api/v1/rules", json=_rule(when={"all": []}))
    [err] = r.get_json()["errors"]
    assert err["loc"] == "when.all" and "`all` needs at least one condition" in err["message"]
    assert "after validation" not in str(r.get_json())


def test_browsers_get_the_styled_404_and_the_api_keeps_json(ui, api):  # type: ignore[no-untyped-def]
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = ui.get("/no/such/page", headers=html)
    assert page.status_code == 404 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "<h1>Not found</h1>" in text and 'aria-label="Main"' in text
    assert "Back to the dashboard" in text
    assert ui.get("/no/such/page").mimetype == "application/json"  # no Accept: JSON
    api_404 = api.get("/api/v1/nope", headers=html)
    assert api_404.status_code == 404 and api_404.get_json()["error"] == "not_found"
