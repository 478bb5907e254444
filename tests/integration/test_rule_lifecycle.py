"""A rule's lifecycle over the API and the UI (issue 14): rename keeps the rule (its id,
versions, history and executions), delete keeps past executions readable, versions with
who/what/when, restore, switches that make no version, deleting a source with its rules,
and export/import with a preview (the plan ``hookwise apply --dry-run`` prints too)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlmodel import Session, select

from engine.store.models import Execution, MatchTrace
from engine.store.rule_files import export
from tests.integration.test_ui_pages import csrf_of, log_in, text_of

RULES = "/api/v1/rules"
WAIT = [{"id": "w", "type": "delay", "seconds": 0}]
WAIT_YAML = "[{id: w, type: delay, seconds: 0}]"


@pytest.fixture
def ui(client, user):  # type: ignore[no-untyped-def]
    return log_in(client)


def post_form(client, url: str, data: dict, *, page: str, **kw):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get(page).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token}, **kw)


def delivered(sink) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted(r.json()["n"] for r in sink.requests)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_rename_keeps_the_rule_its_versions_and_executions(  # type: ignore[no-untyped-def]
        api, rt, forwarded, client, sink, work):
    [first] = forwarded(1)
    work()
    assert [r.json() for r in sink.wait_for(1)] == [{"n": 0}]
    rule_id = rt.catalog.get_rule("fwd").id

    resp = api.patch(f"{RULES}/fwd", json={"name": "forward"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["name"] == "forward" and resp.get_json()["version"] == 2
    assert resp.headers["Location"] == f"{RULES}/forward"
    assert rt.catalog.get_rule("fwd") is None
    assert rt.catalog.get_rule("forward").id == rule_id  # the same row: renamed, not copied
    assert [r["name"] for r in api.get(RULES).get_json()["items"]] == ["forward"]
    assert api.get(f"{RULES}/fwd").status_code == 404

    versions = api.get(f"{RULES}/forward/versions").get_json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    assert versions["items"][0]["note"] == "renamed from fwd; changed name"
    assert versions["items"][0]["actor"] == "token:tests"
    assert [h["action"] for h in versions["history"]] == ["renamed", "created"]
    assert api.get(f"{RULES}/fwd/versions").status_code == 404

    # the past execution and trace follow the rule
    event = api.get(f"/api/v1/events/{first}").get_json()
    assert [e["rule_name"] for e in event["executions"]] == ["forward"]
    with Session(rt.db) as s:
        assert {t.rule_name for t in s.exec(select(MatchTrace))} == {"forward"}

    # one rule, one delivery per event
    forwarded(2)
    work()
    sink.wait_for(3)
    assert delivered(sink) == [0, 0, 1]
    with Session(rt.db) as s:
        runs = s.exec(select(Execution)).all()
    assert sorted((e.rule_name, e.rule_version) for e in runs) == [
        ("forward", 1), ("forward", 2), ("forward", 2)]
    # a replay of the first event runs the renamed rule's version it ran before
    assert api.post(f"/api/v1/events/{first}/replay").status_code in (200, 202)
    work()
    sink.wait_for(4)
    assert delivered(sink) == [0, 0, 0, 1]


def test_rename_refusals(api, forwarded):  # type: ignore[no-untyped-def]
    assert api.post(RULES, json={"name": "other", "source": "s", "actions": WAIT}
                    ).status_code == 201
    taken = api.patch(f"{RULES}/fwd", json={"name": "other"})
    assert taken.status_code == 409
    assert "a rule named 'other' already exists" in taken.get_json()["message"]
    bad = api.patch(f"{RULES}/fwd", json={"name": "Not A Name!"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["loc"] == "name"
    assert api.patch(f"{RULES}/nope", json={"name": "x"}).status_code == 404
    same = api.patch(f"{RULES}/fwd", json={"name": "fwd"})
    assert same.status_code == 200 and same.get_json()["version"] == 1


def test_rename_onto_the_name_of_a_deleted_rule(api, rt, forwarded, work, sink):  # type: ignore[no-untyped-def]
    assert api.post(RULES, json={"name": "old", "source": "s", "actions": WAIT}
                    ).status_code == 201
    assert api.put(f"{RULES}/old", json={"name": "old", "source": "s", "priority": 1,
                                          "actions": WAIT}).status_code == 200
    assert api.delete(f"{RULES}/old").status_code == 204
    forwarded(1)
    work()
    sink.wait_for(1)
    resp = api.patch(f"{RULES}/fwd", json={"name": "old"})
    assert resp.status_code == 200
    # the deleted rule kept v1-v2; the renamed rule's versions count on after them
    items = api.get(f"{RULES}/old/versions").get_json()["items"]
    assert [v["version"] for v in items] == [4, 3, 2, 1]
    assert items[1]["spec"]["name"] == "fwd"
    with Session(rt.db) as s:
        [ex] = s.exec(select(Execution)).all()
    assert (ex.rule_name, ex.rule_version) == ("old", 3)
    assert rt.catalog.compiled_revision("old", 3).spec.name == "fwd"


def test_switching_makes_no_version_but_a_history_entry(api, forwarded):  # type: ignore[no-untyped-def]
    off = api.patch(f"{RULES}/fwd", json={"enabled": False})
    assert off.get_json()["version"] == 1 and off.get_json()["enabled"] is False
    # the same through PUT (a whole document that differs only in `enabled`)
    spec = api.get(f"{RULES}/fwd").get_json()["spec"]
    on = api.put(f"{RULES}/fwd", json={**spec, "enabled": True})
    assert on.get_json()["version"] == 1 and on.get_json()["enabled"] is True
    body = api.get(f"{RULES}/fwd/versions").get_json()
    assert [v["version"] for v in body["items"]] == [1]
    assert [(h["action"], h["version"], h["actor"]) for h in body["history"]] == [
        ("enabled", 1, "token:tests"), ("disabled", 1, "token:tests"), ("created", 1, None)]


def test_restore_a_version(api, rt, forwarded):  # type: ignore[no-untyped-def]
    v1 = api.get(f"{RULES}/fwd").get_json()["spec"]
    api.put(f"{RULES}/fwd", json={**v1, "priority": 7, "description": "changed"})
    api.patch(f"{RULES}/fwd", json={"enabled": False})
    resp = api.post(f"{RULES}/fwd/versions/1/restore")
    assert resp.status_code == 200, resp.get_json()
    rule = resp.get_json()
    assert rule["version"] == 3 and rule["priority"] == 0
    assert rule["enabled"] is False  # the switch is not part of a version
    assert {k: v for k, v in rule["spec"].items() if k != "enabled"} == v1
    [v3, _, _] = api.get(f"{RULES}/fwd/versions").get_json()["items"]
    assert v3["note"].startswith("restored version 1; changed ")
    assert api.post(f"{RULES}/fwd/versions/9/restore").status_code == 404
    assert api.post(f"{RULES}/nope/versions/1/restore").status_code == 404
    # a deleted rule is created again by restoring one of its versions
    assert api.delete(f"{RULES}/fwd").status_code == 204
    again = api.post(f"{RULES}/fwd/versions/2/restore")
    assert again.status_code == 200 and again.get_json()["version"] == 4
    assert again.get_json()["priority"] == 7


def test_deleted_rules_past_executions_stay_readable(api, ui, forwarded, work, sink):  # type: ignore[no-untyped-def]
    [first] = forwarded(1)
    work()
    sink.wait_for(1)
    resp = post_form(ui, "/rules/fwd/delete", {}, page="/rules", follow_redirects=True)
    assert resp.status_code == 200
    assert "Rule “fwd” deleted." in text_of(resp)
    assert api.get(f"{RULES}/fwd").status_code == 404
    event = api.get(f"/api/v1/events/{first}").get_json()
    assert [e["status"] for e in event["executions"]] == ["succeeded"]
    page = ui.get(f"/events/{first}")
    assert page.status_code == 200 and "fwd" in text_of(page)
    versions = ui.get("/rules/fwd/versions")
    assert versions.status_code == 200
    assert "This rule was deleted" in text_of(versions)
    assert "deleted" in text_of(versions)


def test_delete_a_source_with_its_rules_over_the_api(api, rt, forwarded):  # type: ignore[no-untyped-def]
    refused = api.delete("/api/v1/sources/s")
    assert refused.status_code == 409 and "?rules=delete" in refused.get_json()["message"]
    assert api.delete("/api/v1/sources/s?rules=maybe").status_code == 422
    assert api.delete("/api/v1/sources/s?rules=delete").status_code == 204
    assert rt.catalog.get_source("s") is None and rt.catalog.get_rule("fwd") is None
    [h, _] = api.get(f"{RULES}/fwd/versions").get_json()["history"]
    assert (h["action"], h["detail"]) == ("deleted", "with its source s")


def test_delete_a_source_in_the_ui_asks_about_its_rules(ui, rt, forwarded):  # type: ignore[no-untyped-def]
    page = text_of(ui.get("/sources/s/delete"))
    assert "1 rule uses this source" in page and "fwd" in page
    assert "Delete this rule too" in page and "do not delete the source" in page
    kept = post_form(ui, "/sources/s/delete", {"rules": "refuse"}, page="/sources/s/delete",
                     follow_redirects=True)
    assert "Nothing was deleted" in text_of(kept)
    assert rt.catalog.get_source("s") is not None and rt.catalog.get_rule("fwd") is not None
    gone = post_form(ui, "/sources/s/delete", {"rules": "delete"}, page="/sources/s/delete",
                     follow_redirects=True)
    assert "Source “s” and rule “fwd” deleted." in text_of(gone)
    assert rt.catalog.get_source("s") is None and rt.catalog.get_rule("fwd") is None
    # a source nobody uses: no question about rules
    rt.catalog.save([rt.catalog.source("s") or _src("t")], [])
    assert "uses this source" not in text_of(ui.get("/sources/t/delete"))
    assert ui.get("/sources/nope/delete").status_code == 404


def _src(slug: str):  # type: ignore[no-untyped-def]
    from rules.schema import parse_source

    return parse_source({"slug": slug})


def test_versions_page_diff_and_restore(api, ui, forwarded):  # type: ignore[no-untyped-def]
    v1 = api.get(f"{RULES}/fwd").get_json()["spec"]
    api.put(f"{RULES}/fwd", json={**v1, "priority": 7})
    rules_page = text_of(ui.get("/rules"))
    assert 'href="/rules/fwd/versions"' in rules_page
    page = ui.get("/rules/fwd/versions")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = text_of(page)
    assert "API token tests" in html and "changed priority" in html
    # side by side: v1 left, v2 right, the added line marked
    assert '<td class="add"><span class="visually-hidden">added: </span>priority: 7</td>' in html
    resp = post_form(ui, "/rules/fwd/versions/1/restore", {}, page="/rules/fwd/versions",
                     follow_redirects=True)
    assert "Restored version 1 of “fwd” as version 3." in text_of(resp)
    assert api.get(f"{RULES}/fwd").get_json()["priority"] == 0
    same = text_of(ui.get("/rules/fwd/versions?a=1&b=3"))
    assert "Version 1 and version 3 are the same." in same


def test_unknown_rule_versions_page_is_a_styled_404(ui):  # type: ignore[no-untyped-def]
    resp = ui.get("/rules/nope/versions")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert "There is no rule “nope”" in text_of(resp)


def test_export_all_and_selected_in_the_ui(ui, rt, forwarded, api):  # type: ignore[no-untyped-def]
    api.post(RULES, json={"name": "other", "source": "s", "actions": WAIT})
    page = text_of(ui.get("/export"))
    assert 'name="rule" value="other"' in page
    everything = ui.get("/export.yaml?all=1")
    assert everything.status_code == 200
    assert "attachment" in everything.headers["Content-Disposition"]
    assert everything.get_data(as_text=True) == export(rt.catalog, None)  # `hookwise export`
    some = yaml.safe_load(ui.get("/export.yaml?rule=other").get_data(as_text=True))
    assert [r["name"] for r in some["rules"]] == ["other"] and some["sources"] == []


def test_import_previews_then_applies(ui, rt, forwarded, api):  # type: ignore[no-untyped-def]
    exported = yaml.safe_load(ui.get("/export.yaml?all=1").get_data(as_text=True))
    exported["rules"][0]["priority"] = 4
    exported["rules"].append({"name": "fresh", "source": "s", "actions": WAIT})
    text = yaml.safe_dump(exported)
    resp = post_form(ui, "/import", {"file": (io.BytesIO(text.encode()), "mine.yaml")},
                     page="/import", content_type="multipart/form-data")
    assert resp.status_code == 200, text_of(resp)
    html = text_of(resp)
    assert "Preview of mine.yaml" in html and "Applying it would change 2 items" in html
    for kind, name, word in (("source", "s", "unchanged"), ("rule", "fwd", "changed"),
                             ("rule", "fresh", "created")):
        row = html.split(f'id="plan-{kind}-{name}"')[1].split("</tr>")[0]
        assert f"<strong>{word}</strong>" in row, (kind, name, row)
    assert "changed priority" in html
    assert rt.catalog.get_rule("fresh") is None  # a preview writes nothing
    assert rt.catalog.get_rule("fwd").priority == 0

    applied = post_form(ui, "/import/apply", {"filename": "mine.yaml", "text": text},
                        page="/import", follow_redirects=True)
    assert "Imported mine.yaml: 1 created, 1 changed, 1 unchanged." in text_of(applied)
    assert rt.catalog.get_rule("fresh") is not None
    assert rt.catalog.get_rule("fwd").priority == 4
    history = api.get(f"{RULES}/fwd/versions").get_json()["history"]
    assert history[0]["actor"] == "user:ada@example.test"


def test_import_shows_validation_errors_with_file_and_field(ui, rt, forwarded):  # type: ignore[no-untyped-def]
    bad = f"rules:\n  - name: broken\n    source: s\n    priority: lots\n    actions: {WAIT_YAML}\n"
    resp = post_form(ui, "/import", {"file": (io.BytesIO(bad.encode()), "bad.yaml")},
                     page="/import", content_type="multipart/form-data")
    assert resp.status_code == 400
    html = text_of(resp)
    assert "bad.yaml cannot be applied: 1 problem" in html
    row = html.split('id="import-errors"')[1]
    assert "bad.yaml" in row and "rule 'broken'" in row and "<code>priority</code>" in row
    assert rt.catalog.get_rule("broken") is None
    missing = f"rules:\n  - {{name: lost, source: nowhere, actions: {WAIT_YAML}}}\n"
    resp = post_form(ui, "/import", {"file": (io.BytesIO(missing.encode()), "m.yaml")},
                     page="/import", content_type="multipart/form-data")
    assert resp.status_code == 400 and "no source named 'nowhere'" in text_of(resp)
    syntax = post_form(ui, "/import", {"file": (io.BytesIO(b"rules: [\n"), "s.yaml")},
                       page="/import", content_type="multipart/form-data")
    assert syntax.status_code == 400 and "YAML syntax error" in text_of(syntax)
    empty = post_form(ui, "/import", {}, page="/import")
    assert empty.status_code == 400 and "Choose a YAML file" in text_of(empty)
    binary = post_form(ui, "/import", {"file": (io.BytesIO(b"\xff\xfe\x00"), "x.yaml")},
                       page="/import", content_type="multipart/form-data")
    assert binary.status_code == 400 and "not UTF-8 text" in text_of(binary)
    big = b"rules: []\n" + b"#" * 450_000  # past the import's limit
    resp = post_form(ui, "/import", {"file": (io.BytesIO(big), "big.yaml")},
                     page="/import", content_type="multipart/form-data")
    assert resp.status_code == 400 and "big.yaml is larger than 400 kB" in text_of(resp)
    # past the request's limit (HOOKWISE_MAX_BODY_BYTES): the import page says so too
    ui.application.config["MAX_CONTENT_LENGTH"] = 100_000
    huge = b"rules: []\n" + b"#" * 200_000
    resp = post_form(ui, "/import", {"file": (io.BytesIO(huge), "huge.yaml")},
                     page="/import", content_type="multipart/form-data")
    assert resp.status_code == 413 and resp.mimetype == "text/html"
    assert "more than one import takes" in text_of(resp)


def test_cli_apply_dry_run_prints_the_same_plan(rt, forwarded, tmp_path: Path, env):  # type: ignore[no-untyped-def]
    from cli.main import main as cli

    f = tmp_path / "more.yaml"
    f.write_text(f"rules:\n  - {{name: fresh, source: s, actions: {WAIT_YAML}}}\n")
    result = CliRunner().invoke(cli, ["apply", "--dry-run", str(f)], env=env)
    assert result.exit_code == 0, result.output
    assert "rule fresh: would be created" in result.output
    assert "1 would change, 0 unchanged (dry run: nothing written)" in result.output
    assert rt.catalog.get_rule("fresh") is None
    result = CliRunner().invoke(cli, ["apply", str(f)], env=env)
    assert result.exit_code == 0 and "rule fresh: created" in result.output
    [h] = rt.catalog.history("fresh")
    assert h.actor is not None and h.actor.startswith("cli")
