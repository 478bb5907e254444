"""The command line: dry runs, apply/export round trips, errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cli.main import main

TEMPLATES = Path(__file__).resolve().parents[2] / "rules" / "templates"
STARTERS = sorted(TEMPLATES.glob("*.yaml"))


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key in ("HOOKWISE_DATABASE_URL", "HOOKWISE_REDIS_URL", "HOOKWISE_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOOKWISE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return run


@pytest.mark.parametrize("rule_file", STARTERS, ids=lambda p: p.stem)
def test_starter_rules_pass_their_dry_run(cli, rule_file: Path) -> None:  # type: ignore[no-untyped-def]
    sample = rule_file.with_suffix(".sample.json")
    hfile = rule_file.with_suffix(".headers.json")  # providers that match on a header
    extra = [a for k, v in (json.loads(hfile.read_text()) if hfile.exists() else {}).items()
             for a in ("--header", f"{k}:{v}")]
    res = cli("test", str(rule_file), "--payload", str(sample), *extra)
    assert res.exit_code == 0, res.output
    assert "MATCHED" in res.output and "PASS" in res.output and "FAIL" not in res.output
    assert "would send" in res.output
    assert "nothing was sent" in res.output


def test_dry_run_shows_the_failing_condition_and_value(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    payload = json.loads((TEMPLATES / "payment-notify.sample.json").read_text())
    payload["type"] = "charge.refunded"
    p = tmp_path / "p.json"
    p.write_text(json.dumps(payload))
    res = cli("test", str(TEMPLATES / "payment-notify.yaml"), "--payload", str(p))
    assert res.exit_code == 1
    assert "NOT MATCHED" in res.output
    assert "FAIL $.body.type eq" in res.output and '"charge.refunded"' in res.output
    assert "would send" not in res.output


def test_dry_run_json_output(cli) -> None:  # type: ignore[no-untyped-def]
    f = TEMPLATES / "order-to-shipping.yaml"
    res = cli("test", str(f), "--payload", str(f.with_suffix(".sample.json")), "--json")
    [report] = json.loads(res.output)
    assert report["matched"] is True
    first = report["steps"][0]
    assert first["type"] == "webhook" and first["rendered"]["url"].startswith("https://")
    assert first["rendered"]["headers"]["Authorization"] == "Bearer [secret:SHIPPING_API_TOKEN]"


def test_dry_run_bad_payload_is_usage_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "p.json"
    p.write_text("{nope")
    res = cli("test", str(STARTERS[0]), "--payload", str(p))
    assert res.exit_code == 2 and "p.json" in res.output


BROKEN = """
sources:
  - slug: shop
rules:
  - name: good-one
    source: shop
    actions: [{type: webhook, url: "https://example.org/x"}]
  - name: bad-one
    source: shop
    when: {path: $.body.total, op: gtt, value: 3}
    actions: [{type: webhook, url: "https://example.org/{{ body.id"}]
"""


def test_apply_of_a_broken_file_names_everything_and_applies_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "broken.yaml"
    f.write_text(BROKEN)
    res = cli("apply", str(f))
    assert res.exit_code == 2
    out = res.output
    assert "broken.yaml" in out and "rule 'bad-one'" in out
    assert "when.op" in out and "gtt" in out  # field and value
    assert "actions[0].url" in out  # the unclosed template, too
    listed = cli("export")
    assert listed.exit_code == 0
    assert yaml.safe_load(listed.output) == {"sources": [], "rules": []}


def test_apply_refuses_out_of_range_numbers_naming_file_and_field(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "huge.yaml"
    f.write_text("sources: [{slug: s}]\n"
                 "rules: [{name: r, source: s, priority: 99999999999999999999,\n"
                 "         actions: [{type: state, key: k, ttl_s: 99999999999999999999}]}]\n")
    res = cli("apply", str(f))
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all(f"{f}: rule 'r'" in e for e in errors)
    assert "field priority: Input should be less than or equal to 1000000" in errors[0]
    assert "field actions[0].ttl_s: Input should be less than or equal to" in errors[1]
    assert yaml.safe_load(cli("export").output) == {"sources": [], "rules": []}


def test_apply_unknown_source_is_refused(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yaml"
    f.write_text("rules: [{name: r, source: nowhere, actions: [{type: delay, seconds: 1}]}]")
    res = cli("apply", str(f))
    assert res.exit_code == 2 and "nowhere" in res.output and "rule 'r'" in res.output


def test_apply_is_idempotent_and_export_round_trips(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = cli("apply", str(TEMPLATES))
    assert first.exit_code == 0, first.output
    assert "created" in first.output
    again = cli("apply", str(TEMPLATES))
    assert again.exit_code == 0
    assert "0 changed" in again.output and "created" not in again.output

    out_dir = tmp_path / "exported"
    exported = cli("export", str(out_dir))
    assert exported.exit_code == 0
    files = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.yaml"))
    assert "sources.yaml" in files and any(f.startswith("rules/") for f in files)
    # applying the export to the same instance changes nothing …
    assert "0 changed" in cli("apply", str(out_dir)).output
    before = yaml.safe_load(cli("export").output)
    # … and a fresh instance fed the export ends in the same state
    fresh = CliRunner(env={"HOOKWISE_DATA_DIR": str(tmp_path / "fresh")})
    r = fresh.invoke(main, ["apply", str(out_dir)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    after = yaml.safe_load(fresh.invoke(main, ["export"], catch_exceptions=False).output)
    assert after == before and len(after["rules"]) >= 3


def test_secrets_are_write_only(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("secrets", "set", "API_TOKEN", "--value", "hunter2").exit_code == 0
    assert cli("secrets", "set", "FROM_STDIN", input="s3cr3t\n").exit_code == 0
    listed = cli("secrets", "list")
    assert listed.output.split() == ["API_TOKEN", "FROM_STDIN"]
    assert "hunter2" not in listed.output
    assert cli("secrets", "set", "bad name", "--value", "x").exit_code == 2
    assert cli("secrets", "delete", "API_TOKEN").exit_code == 0
    assert cli("secrets", "list").output.split() == ["FROM_STDIN"]
    assert cli("secrets", "delete", "API_TOKEN").exit_code == 1


def test_blank_secrets_are_refused_and_apply_warns_of_unusable_verify_secrets(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for args, stdin in ((["--value", ""], None), (["--value", "   "], None), ([], "\n"),
                        ([], " \t\n")):
        res = cli("secrets", "set", "BLANK", *args, input=stdin)
        assert res.exit_code == 2, (args, stdin)
        assert "secret BLANK: the value is" in res.output
    assert cli("secrets", "list").output.split() == []

    f = tmp_path / "s.yaml"
    f.write_text("sources:\n"
                 "  - {slug: signed, verify: {scheme: hmac, header: X-Sig, secret: SIGNED_KEY}}\n"
                 "  - {slug: open}\n")
    res = cli("apply", str(f))
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: source signed: its verify secret SIGNED_KEY is not set; its "
                        "webhooks are refused (401) until it is set (hookwise secrets set "
                        "SIGNED_KEY)"]
    assert cli("secrets", "set", "SIGNED_KEY", "--value", "k3y").exit_code == 0
    assert "warning:" not in cli("apply", str(f)).output


def test_events_show_explains_a_run(rt, client, work, sink, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from engine.store.rule_files import apply_paths

    f = tmp_path / "r.yaml"
    f.write_text(f"""
sources: [{{slug: ci}}]
rules:
  - name: on-main
    source: ci
    when: {{path: $.body.ref, op: eq, value: main}}
    actions: [{{id: go, type: webhook, url: "{sink.url}/go"}}]
  - name: on-tag
    source: ci
    when: {{path: $.body.ref, op: startswith, value: "v"}}
    actions: [{{id: go, type: webhook, url: "{sink.url}/tag"}}]
""")
    apply_paths(rt.catalog, [f])
    event_id = client.post("/hooks/ci", json={"ref": "main"}).get_json()["event_id"]
    work()
    runner = CliRunner(env={k: str(v) for k, v in {
        "HOOKWISE_DATA_DIR": rt.settings.data_dir,
        "HOOKWISE_DATABASE_URL": rt.settings.database_url,
        "HOOKWISE_SECRET_KEY": rt.settings.secret_key}.items()})
    res = runner.invoke(main, ["events", "show", event_id], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "rule on-main" in res.output and "rule on-tag" in res.output
    assert "startswith" in res.output and "main" in res.output  # why on-tag did not match
    assert "go (webhook): succeeded attempts=1" in res.output
    listed = runner.invoke(main, ["events", "list"], catch_exceptions=False)
    assert event_id in listed.output
