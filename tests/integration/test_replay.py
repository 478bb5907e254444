"""Replay and retry: with today's rules or the versions in force then; resume at the
failed step; in bulk from the CLI."""

from __future__ import annotations

from click.testing import CliRunner
from sqlmodel import Session, select

from cli.main import main
from engine.run.replay import replay_event
from engine.store.models import Execution, MatchTrace
from engine.store.rule_files import apply_paths
from tests.servers import Reply

RULE = """
sources: [{{slug: s}}]
rules:
  - name: fwd
    source: s
    actions: [{{id: out, type: webhook, url: "{url}/{path}", json: {{n: "{{{{ body.n }}}}"}}}}]
"""


def apply(rt, tmp_path, url, path):  # type: ignore[no-untyped-def]
    f = tmp_path / f"{path}.yaml"
    f.write_text(RULE.format(url=url, path=path))
    apply_paths(rt.catalog, [f])


def test_replay_now_uses_todays_rule_and_then_the_old_version(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    apply(rt, tmp_path, sink.url, "v1")
    event_id = client.post("/hooks/s", json={"n": 7}).get_json()["event_id"]
    work()
    apply(rt, tmp_path, sink.url, "v2")  # the rule changes afterwards

    assert replay_event(rt, event_id, rules="now") == 1
    work()
    assert replay_event(rt, event_id, rules="then") == 2
    work()
    # round 0 ran v1, round 1 (now) ran v2, round 2 (then) re-ran what round 1 ran: v2
    assert [r.path for r in sink.requests] == ["/v1", "/v2", "/v2"]
    with Session(rt.db) as s:
        runs = s.exec(select(Execution).order_by(Execution.match_round)).all()
        rounds = {t.match_round for t in s.exec(select(MatchTrace))}
    assert [(e.match_round, e.rule_version, e.status) for e in runs] == [
        (0, 1, "succeeded"), (1, 2, "succeeded"), (2, 2, "succeeded")]
    assert runs[2].replay_of == runs[1].id and rounds == {0, 1, 2}


def test_bulk_retry_of_failed_executions_from_the_cli(rt, client, work, sink, tmp_path):  # type: ignore[no-untyped-def]
    apply(rt, tmp_path, sink.url, "x")
    sink.respond("/x", Reply(status=400))
    for n in range(3):
        client.post("/hooks/s", json={"n": n})
    work()
    with Session(rt.db) as s:
        assert {e.status for e in s.exec(select(Execution))} == {"failed"}
    sink.respond("/x", Reply(json={"ok": True}))
    env = {"HOOKWISE_DATA_DIR": str(rt.settings.data_dir),
           "HOOKWISE_DATABASE_URL": rt.settings.database_url,
           "HOOKWISE_REDIS_URL": rt.redis_url, "HOOKWISE_SECRET_KEY": rt.settings.secret_key,
           "HOOKWISE_QUEUE": rt.settings.queue_name}
    res = CliRunner(env=env).invoke(main, ["replay", "--failed", "--since", "2000-01-01"],
                                    catch_exceptions=False)
    assert res.exit_code == 0 and "3 execution(s) queued" in res.output
    work()
    with Session(rt.db) as s:
        assert {e.status for e in s.exec(select(Execution))} == {"succeeded"}
    assert len(sink.requests) == 6
    bad = CliRunner(env=env).invoke(main, ["replay"], catch_exceptions=False)
    assert bad.exit_code == 2
