"""Secrets are opaque in templates (issue 12, item 2): a corpus of exfiltration transforms.

Each template of ``LEAKS`` is one rule's webhook step, all run by a real worker for one
event. Whatever each does — refused, or sent as a harmless value — no stored record
(step input, output, error; executions; conversation state) and no API answer may hold
the secret, any 6-character piece of it, or of it reversed, upper- or lower-cased, hex-
or base64-encoded. Secrets used whole still reach the receiver with their real value,
and stored records show ``[secret:NAME]`` where they were used, whatever their length.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sqlmodel import Session, select

from engine.store.models import ConversationState, Execution, StepRun
from engine.store.rule_files import apply_paths

VALUE = "s3cr3t-Value_42"
SHORT = "7x"

LEAKS = [
    "{{ secrets.TOK[::-1] }}",
    "{{ secrets.TOK[1:] }}",
    "{{ secrets.TOK[0] }}",
    "{{ ('x' ~ secrets.TOK)[::-1] }}",
    "{{ secrets.TOK|reverse }}",
    "{{ secrets.TOK|upper }}",
    "{{ secrets.TOK|lower }}",
    "{{ secrets.TOK|title }}",
    "{{ secrets.TOK|list }}",
    "{{ secrets.TOK|join('.') }}",
    "{{ secrets.TOK|first }}",
    "{{ secrets.TOK|length }}",
    "{{ secrets.TOK|replace('s', 'S') }}",
    "{{ secrets.TOK|truncate(9) }}",
    "{{ secrets.TOK|wordwrap(3) }}",
    "{{ secrets.TOK|center(40) }}",
    "{{ secrets.TOK|batch(2)|list }}",
    "{{ secrets.TOK|trim|reverse }}",
    "{{ secrets.TOK|b64encode|reverse }}",
    "{{ secrets.TOK|urlencode|reverse }}",
    "{{ secrets.TOK|tojson(2) }}",
    "{{ secrets.TOK|map('upper')|list }}",
    "{{ [secrets.TOK]|map('reverse')|list }}",
    "{{ secrets.TOK.upper() }}",
    "{{ secrets.TOK.encode().hex() }}",
    "{{ secrets.TOK.split('-') }}",
    "{{ secrets.TOK.startswith('s3') }}",
    "{{ '%.3s' % secrets.TOK }}",
    "{{ '{:.4}'.format(secrets.TOK) }}",
    "{% for c in secrets.TOK|reverse %}{{ c }}{% endfor %}",
    "{{ body[secrets.TOK[::-1]] }}",
    "{{ secrets.values()|list }}",
    "{{ secrets.items()|list }}",
    "{{ secrets|list }}",
    "{{ secrets|dictsort }}",
    "{{ secrets.used }}",
    "{{ secrets|attr('used') }}",
    "{{ secrets.WHSEC }}",
    "{{ secrets.WHSEC|reverse }}",
]


def _forms(value: str) -> list[str]:
    return [value, value[::-1], value.upper(), value.lower(), value.encode().hex(),
            base64.b64encode(value.encode()).decode().rstrip("="), ".".join(value)]


def _pieces(value: str, n: int = 6) -> set[str]:
    return {f[i:i + n] for f in _forms(value) for i in range(len(f) - n + 1)}


def _rules(tmp_path, sink_url: str, templates: list[str]):  # type: ignore[no-untyped-def]
    rules = [{"name": f"leak-{i}", "source": "s", "actions": [
        {"id": "out", "type": "webhook", "url": f"{sink_url}/leak/{i}",
         "retry": {"max_attempts": 1}, "json": {"v": t}}]} for i, t in enumerate(templates)]
    doc = {"sources": [{"slug": "s"},
                       {"slug": "signed",
                        "verify": {"scheme": "hmac", "header": "X-Sig", "secret": "WHSEC"}}],
           "rules": rules}
    f = tmp_path / "rules.yaml"
    f.write_text(json.dumps(doc))  # JSON is YAML
    return f


def _everything_stored(rt, api) -> str:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        steps = [(r.rendered, r.output, r.error) for r in s.exec(select(StepRun))]
        execs = [e.error for e in s.exec(select(Execution))]
        states = [c.data for c in s.exec(select(ConversationState))]
    answers = []
    listing = api.get("/api/v1/executions?limit=200").get_json()
    answers.append(listing)
    for ex in listing["items"]:
        answers.append(api.get(f"/api/v1/executions/{ex['id']}").get_json())
    return json.dumps([steps, execs, states, answers], ensure_ascii=False, default=str)


def test_no_transform_reads_a_secret_back(  # type: ignore[no-untyped-def]
        rt, client, api, work, sink, tmp_path) -> None:
    rt.secrets.set("TOK", VALUE)
    rt.secrets.set("WHSEC", "Wq7-Zp9_Lm2Xk")
    apply_paths(rt.catalog, [_rules(tmp_path, sink.url, LEAKS)])
    assert client.post("/hooks/s", json={"k": 1}).status_code == 202
    work(until=lambda: api.get("/api/v1/executions?status=running").get_json()["total"] == 0
         and api.get("/api/v1/executions?limit=200").get_json()["total"] == len(LEAKS))

    stored = _everything_stored(rt, api)
    leaked = sorted(p for p in _pieces(VALUE) | _pieces("Wq7-Zp9_Lm2Xk") if p in stored)
    assert leaked == [], f"secret pieces in stored records or API answers: {leaked[:10]}"

    with Session(rt.db) as s:
        steps = {r.execution_id: r for r in s.exec(select(StepRun))}
        execs = {e.id: e for e in s.exec(select(Execution))}
    refused = [r.error for r in steps.values() if r.status == "failed"]
    # Every transform that would look inside a secret is refused with the reason.
    assert len(refused) >= len(LEAKS) - 4, [(execs[k].rule_name, r.status)
                                            for k, r in steps.items()]
    assert all("secret" in (e or "") for e in refused), refused
    assert any("verifies the webhooks of source 'signed'" in (e or "") for e in refused)
    # Nothing the receiver got holds a piece of the secret either.
    received = json.dumps([r.json() for r in sink.requests])
    assert not [p for p in _pieces(VALUE) if p in received], received


def test_whole_secrets_reach_the_receiver_and_records_name_them(  # type: ignore[no-untyped-def]
        rt, client, api, work, sink, tmp_path) -> None:
    rt.secrets.set("TOK", VALUE)
    rt.secrets.set("PIN", SHORT)
    rt.secrets.set("USER", "bot")
    f = tmp_path / "r.yaml"
    f.write_text(json.dumps({"sources": [{"slug": "s"}], "rules": [{
        "name": "calls", "source": "s", "actions": [{
            "id": "out", "type": "webhook", "url": sink.url + "/x?pin={{ secrets.PIN|urlencode }}",
            "headers": {"Authorization": "Basic {{ (secrets.USER ~ ':' ~ secrets.TOK)|b64encode }}",
                        "X-Token": "{{ secrets.TOK }}"},
            "json": {"pin": "{{ secrets.PIN }}", "tok": "Bearer {{ secrets.TOK }}",
                     "as_json": "{{ {'t': secrets.TOK}|tojson }}",
                     "forged": "{{ body.forged }}",
                     "same": "{{ secrets.TOK == body.guess }}"}}]}]}))
    apply_paths(rt.catalog, [f])
    forged = "\ue000" + "0" * 16 + "|secret:TOK|0\ue001"
    client.post("/hooks/s", json={"forged": forged, "guess": VALUE})
    work()
    [got] = sink.wait_for(1)
    assert got.query["pin"] == SHORT
    assert got.headers["x-token"] == VALUE
    assert base64.b64decode(got.headers["authorization"].split()[1]).decode() == f"bot:{VALUE}"
    body = got.json()
    assert body["pin"] == SHORT and body["tok"] == f"Bearer {VALUE}"
    assert json.loads(body["as_json"]) == {"t": VALUE}
    assert body["forged"] == forged  # a payload cannot name a secret
    assert body["same"] is False  # no oracle: the template never holds the value

    with Session(rt.db) as s:
        step = s.exec(select(StepRun)).one()
    assert step.rendered["json"]["pin"] == "[secret:PIN]"  # short secrets are named too
    assert step.rendered["json"]["tok"] == "Bearer [secret:TOK]"
    assert step.rendered["headers"]["X-Token"] == "[secret:TOK]"
    assert step.rendered["url"].endswith("?pin=[urlencode([secret:PIN])]")
    shown = json.dumps(api.get(f"/api/v1/executions/{step.execution_id}").get_json())
    assert VALUE not in shown and f'"{SHORT}"' not in shown and "[secret:PIN]" in shown


@pytest.mark.parametrize("step", [
    {"id": "mem", "type": "state", "key": "k", "set": {"token": "{{ secrets.TOK }}"}},
])
def test_steps_that_store_what_they_get_cannot_hold_a_secret(  # type: ignore[no-untyped-def]
        rt, client, work, tmp_path, step: dict[str, Any]) -> None:
    rt.secrets.set("TOK", VALUE)
    f = tmp_path / "r.yaml"
    f.write_text(json.dumps({"sources": [{"slug": "s"}],
                             "rules": [{"name": "keep", "source": "s", "actions": [step]}]}))
    apply_paths(rt.catalog, [f])
    client.post("/hooks/s", json={})
    work()
    with Session(rt.db) as s:
        run = s.exec(select(StepRun)).one()
        states = [c.data for c in s.exec(select(ConversationState))]
    assert run.status == "failed"
    assert "cannot hold a secret" in (run.error or "")
    assert VALUE not in json.dumps(states)


def test_the_dry_run_treats_secrets_as_the_worker_does(api) -> None:  # type: ignore[no-untyped-def]
    """Issue 12, items 2 and 5: the dry run is the worker's code path, secrets included."""
    rule = {"name": "dry", "source": "s", "actions": [
        {"id": "ok", "type": "webhook", "url": "https://example.org/{{ secrets.TOK }}",
         "headers": {"X-T": "{{ secrets.TOK }}"}},
        {"id": "upper", "type": "webhook", "url": "https://example.org/",
         "json": {"t": "{{ secrets.TOK|upper }}"}},
        {"id": "mem", "type": "state", "key": "k", "set": {"t": "{{ secrets.TOK }}"}}]}
    resp = api.post("/api/v1/rules/test", json={"rule": rule, "event": {"body": {}}})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    ok, upper, mem = resp.get_json()["steps"]
    assert ok["rendered"]["url"] == "https://example.org/[secret:TOK]"
    assert ok["rendered"]["headers"]["X-T"] == "[secret:TOK]"
    assert "upper filter cannot be used on secrets.TOK" in upper["error"]
    assert "cannot hold a secret" in mem["error"]
