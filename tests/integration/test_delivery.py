"""Delivery against slow, hanging, rate-limiting and failing receivers (issue 11): the
real worker with its delivery threads (``work`` fixture), real Redis for the shared
destination guard, HTTP receivers on loopback.

Every assertion is on something observable — requests open at once at a receiver, the
order and time of arrivals, a step's status, reason and attempts in the database, the
API's and the CLI's view — never on how fast the machine is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlmodel import Session, select

from cli.main import main
from engine.ids import utcnow
from engine.store.models import Execution, StepRun
from engine.store.rule_files import apply_paths
from tests.servers import HttpSink, Reply, free_port


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    """The receiver, with a listen queue for many connections at once (socketserver's
    default of 5 resets some of them: a failed attempt the engine rightly retries)."""
    with HttpSink(backlog=256) as s:
        yield s


def apply(rt, tmp_path: Path, text: str, name: str = "rules.yaml") -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / name
    f.write_text(text)
    apply_paths(rt.catalog, [f])


def post(client, numbers) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    for n in numbers:
        resp = client.post("/hooks/s", json={"n": n})
        assert resp.status_code == 202, resp.get_data(as_text=True)
        ids.append(resp.get_json()["event_id"])
    return ids


def step_rows(rt, step_id: str | None = None) -> list[StepRun]:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        q = select(StepRun)
        if step_id is not None:
            q = q.where(StepRun.step_id == step_id)
        return list(s.exec(q))


def steps_of(rt, event_ids: list[str]) -> list[StepRun]:  # type: ignore[no-untyped-def]
    """The (single) step of each event's (single) execution, in the order of the ids."""
    with Session(rt.db) as s:
        by_event = {ex.event_id: ex.id for ex in s.exec(select(Execution))}
        rows = {st.execution_id: st for st in s.exec(select(StepRun))}
    return [rows[by_event[e]] for e in event_ids]


def executions(rt) -> list[Execution]:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return list(s.exec(select(Execution)))


def all_succeeded(rt, count: int) -> bool:  # type: ignore[no-untyped-def]
    exs = executions(rt)
    return len(exs) == count and all(ex.status == "succeeded" for ex in exs)


def sent_numbers(sink: HttpSink, path: str) -> list[int]:
    return sorted(int(r.json()["n"]) for r in sink.requests if r.path == path)


FORWARD = """
sources: [{{slug: s}}]
{destinations}
rules:
  - name: fwd
    source: s
    actions:
      - id: out
        type: webhook
        url: "{url}/out"
        json: {{n: "{{{{ body.n }}}}"}}
        {extra}
"""


def forward(url: str, *, destinations: str = "", extra: str = "") -> str:
    return FORWARD.format(url=url, destinations=destinations, extra=extra)


# -- a slow receiver ----------------------------------------------------------------------
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_slow_receiver_gets_many_requests_at_once_and_each_event_once(  # type: ignore[no-untyped-def]
        rt, client, work, sink, tmp_path):
    apply(rt, tmp_path, forward(sink.url))
    sink.respond("/out", Reply(json={"ok": True}, delay=0.3))
    post(client, range(40))
    work(until=lambda: all_succeeded(rt, 40), timeout=60)
    # one worker process: 40 calls one after another would never overlap at the sink
    assert sink.max_in_flight >= 10, f"only {sink.max_in_flight} requests in flight at once"
    assert sent_numbers(sink, "/out") == list(range(40))  # each event delivered, once
    keys = {r.headers["idempotency-key"] for r in sink.requests}
    assert len(keys) == 40
    assert {st.attempts for st in step_rows(rt)} == {1}
    assert rt.dispatcher is not None and not rt.dispatcher.busy


# -- a hanging receiver beside a fast one -------------------------------------------------
class TestHangingDestination:
    @pytest.fixture
    def env(self, env: dict) -> dict:
        # 4 delivery threads, at most 2 of them for one destination: without the shares
        # the hanging receiver would hold all four and the fast deliveries would wait
        return {**env, "HOOKWISE_WORKER_CONCURRENCY": "4",
                "HOOKWISE_DESTINATION_CONCURRENCY": "2"}

    @pytest.fixture
    def hang(self) -> Iterator[HttpSink]:
        with HttpSink(backlog=64) as s:  # stopping it ends its 30 s answers at once
            s.respond("/hang", Reply(json={"late": True}, delay=30))
            yield s

    def test_fast_deliveries_do_not_wait_behind_a_hanging_destination(  # type: ignore[no-untyped-def]
            self, rt, client, work, sink, hang, tmp_path):
        assert rt.settings.worker_concurrency == 4 and rt.settings.destination_share == 2
        apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
rules:
  - name: to-hang
    source: s
    when: {{path: $.body.n, op: lt, value: 4}}
    actions:
      - id: hang
        type: webhook
        url: "{hang.url}/hang"
        json: {{n: "{{{{ body.n }}}}"}}
        timeout_s: 2
        retry: {{max_attempts: 3, backoff: fixed, initial_s: 600}}
  - name: to-fast
    source: s
    actions: [{{id: fast, type: webhook, url: "{sink.url}/fast", json: {{n: "{{{{ body.n }}}}"}}}}]
""")
        # how many calls the hanging receiver had received when each fast one arrived
        hang_calls_seen: list[int] = []
        sink.handler = lambda rec: hang_calls_seen.append(len(hang.requests))  # type: ignore[func-returns-value]
        post(client, range(12))

        def settled() -> bool:
            hung = step_rows(rt, "hang")
            fast = step_rows(rt, "fast")
            return (len(hung) == 4 and all(st.status == "waiting" and st.attempts == 1
                                           for st in hung)
                    and len(fast) == 12 and all(st.status == "succeeded" for st in fast))

        work(until=settled, timeout=60)
        assert sent_numbers(sink, "/fast") == list(range(12))
        # a third call to the hanging receiver only starts when one of the first two has
        # timed out and left its slot: every fast delivery came before that
        assert len(hang_calls_seen) == 12 and max(hang_calls_seen) <= 2, hang_calls_seen
        # the hanging destination never held more than its share: two at a time, the
        # next two only after a timeout (2 s) freed a slot
        assert len(hang.requests) == 4
        first_two, last_two = hang.arrived_at[:2], hang.arrived_at[2:]
        assert min(last_two) - min(first_two) >= 1.5, hang.arrived_at
        # the hanging steps are not lost: waiting for their retry, with the reason
        for st in step_rows(rt, "hang"):
            assert "timed out after 2" in (st.error or ""), st.error
            assert st.next_attempt_at is not None and st.next_attempt_at > utcnow()
        assert {ex.status for ex in executions(rt) if ex.rule_name == "to-hang"} == {"waiting"}


# -- 429 Retry-After ----------------------------------------------------------------------
def test_a_429_slows_the_destination_down_for_every_step(rt, client, work, sink, api,  # type: ignore[no-untyped-def]
                                                         tmp_path):
    apply(rt, tmp_path, forward(sink.url))
    sink.queue("/out", Reply(status=429, headers={"Retry-After": "3"}))  # then 200s
    [first] = post(client, [0])

    def first_waits() -> bool:
        [st] = steps_of(rt, [first])
        return st.status == "waiting" and st.attempts == 1

    work(until=first_waits)
    others = post(client, [1, 2, 3, 4])

    def others_held() -> bool:
        rows = steps_of(rt, others)
        return all(st.status == "waiting" for st in rows)

    work(until=others_held)
    assert len(sink.requests) == 1, "the other steps went to the destination that said 429"
    [got_429] = steps_of(rt, [first])
    assert got_429.attempts == 1 and "429" in (got_429.error or "")
    for st in steps_of(rt, others):
        assert st.attempts == 0, "waiting for a slowed-down destination spent an attempt"
        assert "slow down" in (st.error or ""), st.error
        assert st.next_attempt_at is not None and st.next_attempt_at > utcnow() \
            + timedelta(seconds=0.5), "held for less than the Retry-After"
    [row] = [r for r in api.get("/api/v1/destinations").get_json()["items"]
             if r["destination"] == f"http://127.0.0.1:{sink.port}"]
    assert row["state"] == "slowed" and row["resumes_at"] is not None

    work(until=lambda: all_succeeded(rt, 5), timeout=30)
    assert sent_numbers(sink, "/out") == [0, 0, 1, 2, 3, 4]  # the 429'd one twice
    assert [st.attempts for st in steps_of(rt, [first, *others])] == [2, 1, 1, 1, 1]
    # nobody called before the 3 s the receiver asked for had passed
    t429 = sink.arrived_at[0]
    assert all(t - t429 >= 2.8 for t in sink.arrived_at[1:]), \
        [round(t - t429, 2) for t in sink.arrived_at]


# -- a destination that is down, paused by its breaker, and comes back ---------------------
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_down_destination_is_paused_resumed_by_hand_and_then_delivered(  # type: ignore[no-untyped-def]
        rt, env, client, work, api, tmp_path):
    port = free_port()  # nothing listens: every call is refused
    url = f"http://127.0.0.1:{port}"
    destination = f"http://127.0.0.1:{port}"
    apply(rt, tmp_path, forward(
        url, destinations="destinations: [{host: 127.0.0.1, breaker: {failures: 2}}]",
        extra="retry: {max_attempts: 20, backoff: fixed, initial_s: 1}"))
    first = post(client, [0, 1])

    def paused() -> bool:
        return all(st.status == "waiting" and st.attempts == 1 for st in steps_of(rt, first))

    work(until=paused)
    later = post(client, [2, 3, 4])

    def held() -> bool:
        return all(st.status == "waiting" for st in steps_of(rt, later))

    work(until=held)
    for st in steps_of(rt, later):
        assert st.attempts == 0, "a step spent an attempt on a paused destination"
        assert st.error is not None and st.error.startswith(
            f"destination {destination} paused since "), st.error
        assert "could not reach" in st.error  # with the last error
    for st in steps_of(rt, first):
        assert "could not reach" in (st.error or ""), st.error

    items = api.get("/api/v1/destinations").get_json()["items"]
    [row] = [r for r in items if r["destination"] == destination]
    assert row["state"] == "paused", row
    assert row["failures"] >= 2 and "could not reach" in row["last_error"]
    assert row["since"] is not None and row["resumes_at"] > row["since"]
    assert row["config"]["breaker"] == {"failures": 2}

    metrics = api.get("/metrics").get_data(as_text=True)
    assert (f'hookwise_destination_state{{destination="{destination}",state="paused"}} 1.0'
            in metrics), [ln for ln in metrics.splitlines() if "destination_state" in ln]

    listed = CliRunner().invoke(main, ["destinations", "list"], env=env,
                                catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    [line] = [ln for ln in listed.output.splitlines() if ln.startswith(destination)]
    assert "\tpaused" in line and "could not reach" in line, listed.output

    resp = api.post("/api/v1/destinations/resume", json={"destination": destination})
    assert resp.status_code == 204
    again = api.post("/api/v1/destinations/resume", json={"destination": destination})
    assert again.status_code == 404
    items = api.get("/api/v1/destinations").get_json()["items"]
    assert [r["state"] for r in items if r["destination"] == destination] in ([], ["ok"])

    with HttpSink(port=port, backlog=64) as back:  # the receiver comes back on its port
        work(until=lambda: all_succeeded(rt, 5), timeout=30)
        assert sent_numbers(back, "/out") == [0, 1, 2, 3, 4]
    attempts = [st.attempts for st in steps_of(rt, first + later)]
    assert max(attempts) <= 3, attempts
    assert attempts[2:] == [1, 1, 1]  # held while paused: their one attempt is the success


def test_a_failing_destination_is_probed_one_call_at_a_time_with_a_growing_pause(  # type: ignore[no-untyped-def]
        rt, client, work, sink, api, tmp_path):
    """A receiver answering 503 (down, then back): once paused, one probe per back-off
    (2 s, then 4 s) reaches it — not one call per waiting step, even while a probe is
    out for a while — and nothing is lost."""
    apply(rt, tmp_path, forward(
        sink.url, destinations="destinations: [{host: 127.0.0.1, breaker: {failures: 2}}]",
        extra="retry: {max_attempts: 30, backoff: fixed, initial_s: 0.5}"))
    sink.respond("/out", Reply(status=503))
    destination = f"http://127.0.0.1:{sink.port}"

    def state() -> str | None:
        rows = api.get("/api/v1/destinations").get_json()["items"]
        return next((r["state"] for r in rows if r["destination"] == destination), None)

    ids = post(client, range(6))
    work(until=lambda: state() == "paused"
         and all(st.status == "waiting" for st in steps_of(rt, ids)))
    before = len(sink.requests)  # the calls that opened the breaker (2 to 6 of them)
    assert 2 <= before <= 6 and all(st.attempts <= 1 for st in steps_of(rt, ids))
    # from now on it takes 1.5 s to fail: the other steps come back while the probe is out
    sink.respond("/out", Reply(status=503, delay=1.5))

    # every step retries after 0.5 s; while paused, none of them may call
    work(until=lambda: len(sink.requests) > before, timeout=20)
    probe_at = sink.arrived_at[before]
    assert probe_at - sink.arrived_at[1] >= 1.9, "probed before the 2 s pause had passed"
    # the probe is out, then fails and the pause doubles: nobody else calls meanwhile
    work(until=lambda: time.monotonic() - probe_at >= 3.0, timeout=20)
    assert len(sink.requests) == before + 1, [round(t - probe_at, 2) for t in sink.arrived_at]
    assert sum(st.attempts for st in steps_of(rt, ids)) == before + 1
    assert {st.status for st in steps_of(rt, ids)} == {"waiting"}

    sink.respond("/out", Reply(json={"ok": True}))  # back
    work(until=lambda: all_succeeded(rt, 6), timeout=30)
    # the failed probe's answer came 1.5 s after it, then a pause of 4 s
    assert sink.arrived_at[before + 1] - probe_at >= 5.3, "the second probe came too soon"
    assert sent_numbers(sink, "/out").count(0) >= 1 and len(sink.requests) == before + 1 + 6
    assert sorted({int(r.json()["n"]) for r in sink.requests[before + 1:]}) == list(range(6))
    assert sum(st.attempts for st in steps_of(rt, ids)) == before + 1 + 6
    assert state() in (None, "ok")


# -- an outgoing rate limit ---------------------------------------------------------------
def test_an_outgoing_rate_limit_spreads_the_calls(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    apply(rt, tmp_path, forward(sink.url, destinations=(
        "destinations: [{host: 127.0.0.1, rate_limit: {requests: 2, per_s: 1}}]")))
    post(client, range(6))
    work(until=lambda: all_succeeded(rt, 6), timeout=60)
    assert sent_numbers(sink, "/out") == list(range(6))
    times = sorted(sink.arrived_at)
    # 2 per second: no window of a second holds more than 2 plus one at its edge (the
    # 0.1 s allows for a first call that reached the receiver later than its turn)
    busiest = max(sum(1 for u in times if t <= u < t + 0.9) for t in times)
    assert busiest <= 3, [round(t - times[0], 2) for t in times]
    # 6 calls at 2 per second: at least 2 s from the first to the last (less jitter)
    assert times[-1] - times[0] >= 1.5, [round(t - times[0], 2) for t in times]
    assert {st.attempts for st in step_rows(rt)} == {1}  # waiting for a turn costs none


# -- destinations in rule files -----------------------------------------------------------
DESTINATIONS = """
sources: [{slug: s}]
destinations:
  - host: api.example.com
    concurrency: 4
    rate_limit: {requests: 30, per_s: 1}
    breaker: {failures: 3}
  - host: "https://hooks.example.org:8443"
    rate_limit: {requests: 1, per_s: 2.5}
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key in ("HOOKWISE_DATABASE_URL", "HOOKWISE_REDIS_URL", "HOOKWISE_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOOKWISE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def test_destinations_apply_export_round_trip(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "dest.yaml"
    f.write_text(DESTINATIONS)
    first = cli("apply", str(f))
    assert first.exit_code == 0, first.output
    assert "destination api.example.com: created" in first.output
    assert "destination https://hooks.example.org:8443: created" in first.output

    exported = cli("export")
    assert exported.exit_code == 0, exported.output
    doc = yaml.safe_load(exported.output)
    dests = {d["host"]: d for d in doc["destinations"]}
    assert set(dests) == {"api.example.com", "https://hooks.example.org:8443"}
    api_ex = dests["api.example.com"]
    assert api_ex["concurrency"] == 4 and api_ex["breaker"] == {"failures": 3}
    assert api_ex["rate_limit"]["requests"] == 30 and api_ex["rate_limit"].get("per_s", 1) == 1
    assert dests["https://hooks.example.org:8443"]["rate_limit"] == {"requests": 1, "per_s": 2.5}

    again = cli("apply", str(f))
    assert again.exit_code == 0, again.output
    assert "0 changed" in again.output and "created" not in again.output
    assert "destination api.example.com: unchanged" in again.output

    out_dir = tmp_path / "exported"
    assert cli("export", str(out_dir)).exit_code == 0
    assert (out_dir / "destinations.yaml").exists()
    from_export = cli("apply", str(out_dir))
    assert from_export.exit_code == 0, from_export.output
    assert "0 changed" in from_export.output, from_export.output

    # a changed limit is an update, and the export follows it
    f.write_text(DESTINATIONS.replace("concurrency: 4", "concurrency: 8"))
    changed = cli("apply", str(f))
    assert "destination api.example.com: updated" in changed.output, changed.output
    doc = yaml.safe_load(cli("export").output)
    assert {d["host"]: d for d in doc["destinations"]}["api.example.com"]["concurrency"] == 8


@pytest.mark.parametrize(("entry", "field", "value"), [
    ('{host: "bad host!"}', "host", "bad host!"),
    ("{host: ok.example, burst: 3}", "burst", "unknown field"),
    ("{host: ok.example, rate_limit: {requests: 0}}", "rate_limit.requests", "0"),
], ids=["bad-host", "unknown-field", "zero-rate"])
def test_a_bad_destination_is_refused_naming_file_and_field(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path, entry: str, field: str, value: str) -> None:
    f = tmp_path / "bad-dest.yaml"
    f.write_text(f"sources: [{{slug: s}}]\ndestinations:\n  - {entry}\n")
    res = cli("apply", str(f))
    assert res.exit_code == 2, res.output
    assert "bad-dest.yaml" in res.output and f"field {field}" in res.output, res.output
    assert value in res.output, res.output
    exported = yaml.safe_load(cli("export").output)
    assert exported.get("destinations", []) == [] and exported["sources"] == []  # nothing applied


def test_destinations_list_without_any(rt, env) -> None:  # type: ignore[no-untyped-def]
    listed = CliRunner().invoke(main, ["destinations"], env=env, catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    assert "no destinations configured, none failing" in listed.output
    resumed = CliRunner().invoke(main, ["destinations", "resume", "http://nowhere.example:80"],
                                 env=env)
    assert resumed.exit_code == 2 and "not paused or held" in resumed.output


def test_a_rate_limit_holds_in_every_window_not_only_on_average(rt, client, work, sink,  # type: ignore[no-untyped-def]
                                                                tmp_path):
    """``{requests: 5, per_s: 1}`` promises at most 5 calls in any second (README: "calls
    are spread to at most `requests` per `per_s` seconds"; OutgoingRateSpec: "At most
    requests calls per per_s seconds") — a receiver with that limit must not answer 429."""
    apply(rt, tmp_path, forward(sink.url, destinations=(
        "destinations: [{host: 127.0.0.1, rate_limit: {requests: 5, per_s: 1}}]")))
    post(client, range(15))
    work(until=lambda: all_succeeded(rt, 15), timeout=60)
    times = sorted(sink.arrived_at)
    busiest = max(sum(1 for u in times if t <= u < t + 0.9) for t in times)
    assert busiest <= 5 + 1, (f"{busiest} calls within 0.9 s under a limit of 5 per second: "
                              f"{[round(t - times[0], 2) for t in times]}")
