"""Connections (issue 15, items 6 and 7): a named base URL + auth + default headers used by
webhook steps with ``connection:``, and the typed ones (Slack, Telegram, Discord, Teams,
Twilio, Stripe). Everything end to end: a rule file applied, an event posted over the
app, a real RQ worker, real HTTP servers on loopback standing in for the services."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from engine.store.models import Execution, StepRun
from engine.store.rule_files import apply_paths, export_documents, load_texts, merged_document
from rules.errors import RuleValidationError
from tests.servers import Recorded, Reply

API_TOKEN = "tok-api-3f9c1e"
PASSWORD = "pw-basic-77aa21"
API_KEY = "key-hdr-5b1d0c"
QUERY_KEY = "key-query-9e2f44"
CLIENT_SECRET = "cs-oauth-81c0de"
SLACK_TOKEN = "xoxb-slack-0a1b2c"
TG_TOKEN = "123456:tg-secret-AAbb"
STRIPE_KEY = "sk_test_stripe_4e4e"
TWILIO_TOKEN = "twilio-auth-6d6d"
DISCORD_TOKEN = "discord-bot-7c7c"
ALL_SECRETS = {"API_TOKEN": API_TOKEN, "PASSWORD": PASSWORD, "API_KEY": API_KEY,
               "QUERY_KEY": QUERY_KEY, "CLIENT_SECRET": CLIENT_SECRET,
               "SLACK_TOKEN": SLACK_TOKEN, "TG_TOKEN": TG_TOKEN, "STRIPE_KEY": STRIPE_KEY,
               "TWILIO_TOKEN": TWILIO_TOKEN, "DISCORD_TOKEN": DISCORD_TOKEN}


def apply(rt, tmp_path, text_: str) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "rules.yaml"
    f.write_text(text_)
    apply_paths(rt.catalog, [f])


def set_secrets(rt) -> None:  # type: ignore[no-untyped-def]
    for name, value in ALL_SECRETS.items():
        rt.secrets.set(name, value)


def status(x: Any) -> str:
    return str(getattr(x, "value", x))


def executions(rt) -> list[Execution]:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return list(s.exec(select(Execution).order_by(Execution.created_at)))  # type: ignore[arg-type]


def steps(rt) -> dict[str, StepRun]:  # type: ignore[no-untyped-def]
    """The last row of each step id."""
    with Session(rt.db) as s:
        return {r.step_id: r for r in s.exec(select(StepRun).order_by(StepRun.id))}  # type: ignore[arg-type]


def settled(rt, n: int = 1):  # type: ignore[no-untyped-def]
    """n executions finished, or waiting for a retry."""
    return lambda: sum(1 for e in executions(rt)
                       if status(e.status) in ("succeeded", "failed", "waiting")) >= n


def stored_text(rt) -> str:  # type: ignore[no-untyped-def]
    """Everything the run tables hold, as text."""
    with rt.db.connect() as c:
        rows = [str(tuple(r)) for table in ("step_runs", "executions", "events")
                for r in c.execute(text(f"SELECT * FROM {table}"))]  # noqa: S608
    return "\n".join(rows)


def assert_no_secret_stored(rt, *extra: str) -> None:  # type: ignore[no-untyped-def]
    stored = stored_text(rt)
    for value in (*ALL_SECRETS.values(), *extra):
        assert value not in stored, f"{value!r} is stored"
    basic = base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    assert basic not in stored


AUTH_RULES = """
sources: [{{slug: s}}]
connections:
  - name: bearer-api
    base_url: "{url}/v1/"
    auth: {{type: bearer, secret: API_TOKEN}}
    headers: {{X-Team: ops, Accept: application/json}}
  - name: basic-api
    base_url: "{url}/basic"
    auth: {{type: basic, username: ops, secret: PASSWORD}}
  - name: header-api
    base_url: "{url}/hdr"
    auth: {{type: header, name: X-Api-Key, secret: API_KEY}}
  - name: query-api
    base_url: "{url}/q?fixed=1"
    auth: {{type: query, name: api_key, secret: QUERY_KEY}}
rules:
  - name: calls
    source: s
    actions:
      - {{id: b, type: webhook, connection: bearer-api, url: "orders/{{{{ body.id }}}}",
         headers: {{X-Team: override}}, json: {{id: "{{{{ body.id }}}}"}}}}
      - {{id: ba, type: webhook, connection: basic-api, url: /items, method: GET}}
      - {{id: h, type: webhook, connection: header-api, url: "", json: {{a: 1}}}}
      - {{id: q, type: webhook, connection: query-api, url: "", query: {{page: 2}},
         method: GET}}
"""


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_bearer_basic_header_and_query_auth_end_to_end(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    set_secrets(rt)
    apply(rt, tmp_path, AUTH_RULES.format(url=sink.url))
    r = client.post("/hooks/s", json={"id": 42})
    assert r.status_code == 202
    work(until=settled(rt))
    [ex] = executions(rt)
    assert status(ex.status) == "succeeded", ex.error
    by_path = {req.path: req for req in sink.requests}
    assert set(by_path) == {"/v1/orders/42", "/basic/items", "/hdr", "/q"}

    b = by_path["/v1/orders/42"]
    assert b.headers["authorization"] == f"Bearer {API_TOKEN}"
    assert b.headers["x-team"] == "override"  # the step's header over the connection's
    assert b.headers["accept"] == "application/json"
    assert b.headers["idempotency-key"] == f"{ex.id}:b"
    assert b.json() == {"id": 42}

    ba = by_path["/basic/items"]
    assert ba.method == "GET"
    user, _, password = base64.b64decode(ba.headers["authorization"].split()[1]).decode() \
        .partition(":")
    assert (user, password) == ("ops", PASSWORD)

    assert by_path["/hdr"].headers["x-api-key"] == API_KEY
    q = by_path["/q"]
    assert q.query == {"fixed": "1", "api_key": QUERY_KEY, "page": "2"}

    rows = steps(rt)
    # recorded: the relative url and the connection, never a credential
    assert rows["b"].rendered["connection"] == "bearer-api"
    assert rows["b"].rendered["url"] == "orders/42"
    sent = rows["b"].output["request"]
    assert sent["url"] == f"{sink.url}/v1/orders/42"
    assert sent["headers"]["authorization"] == "Bearer [secret:API_TOKEN]"
    assert rows["h"].output["request"]["headers"]["x-api-key"] == "[secret:API_KEY]"
    assert "api_key=[secret:QUERY_KEY]" in rows["q"].output["url"]
    assert rows["ba"].output["request"]["headers"]["authorization"] == \
        "Basic [secret:PASSWORD]"
    assert_no_secret_stored(rt)


def test_a_connection_must_exist_and_its_url_stays_relative(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    with pytest.raises(RuleValidationError) as info:
        apply(rt, tmp_path, """
sources: [{slug: s}]
rules:
  - name: r
    source: s
    actions: [{type: webhook, connection: nope, url: /x}]
""")
    assert "rule 'r': field actions[0].connection: no connection named 'nope'" in str(info.value)
    with pytest.raises(RuleValidationError) as info:
        apply(rt, tmp_path, """
connections:
  - {name: t, type: telegram}
  - {name: w, type: teams}
  - {name: x, base_url: "https://user:pw@example.com", auth: {type: magic}}
""")
    message = str(info.value)
    assert "connection 't': a telegram connection needs auth (bearer)" in message
    assert "connection 'w': a teams connection needs base_url" in message
    assert "connection 'x': field base_url: base_url cannot hold credentials" in message
    assert "connection 'x': field auth: unknown auth type 'magic'" in message

    # an absolute url would send the connection's credentials elsewhere: refused when
    # saved, and when one is rendered
    with pytest.raises(RuleValidationError) as info:
        apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
connections: [{{name: c, base_url: "{sink.url}/api"}}]
rules:
  - {{name: r, source: s, actions: [{{type: webhook, connection: c, url: "https://x.io/y"}}]}}
""")
    assert "must be a path below connection 'c''s base URL, not an absolute URL" in \
        str(info.value)
    set_secrets(rt)
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
connections: [{{name: c, base_url: "{sink.url}/api", auth: {{type: bearer, secret: API_TOKEN}}}}]
rules:
  - name: r
    source: s
    actions: [{{id: out, type: webhook, connection: c, url: "{{{{ body.u }}}}"}}]
""")
    client.post("/hooks/s", json={"u": "http://127.0.0.1:9/steal"})
    work(until=settled(rt))
    row = steps(rt)["out"]
    assert status(row.status) == "failed"
    assert "is absolute; with a connection the url is relative to its base URL" in row.error
    assert sink.requests == []


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_connections_export_and_apply_back_unchanged(rt, tmp_path):  # type: ignore[no-untyped-def]
    apply(rt, tmp_path, """
connections:
  - name: slack
    type: slack
    auth: {type: bearer, secret: SLACK_TOKEN}
  - name: idp
    base_url: https://api.example.com
    auth: {type: oauth2_client_credentials, token_url: https://idp.example.com/token,
           client_id: hookwise, secret: CLIENT_SECRET, scope: "read write"}
    headers: {X-Env: prod}
""")
    docs = export_documents(rt.catalog)
    assert docs["connections.yaml"] == {"connections": [
        {"name": "idp", "base_url": "https://api.example.com",
         "auth": {"type": "oauth2_client_credentials",
                  "token_url": "https://idp.example.com/token", "client_id": "hookwise",
                  "secret": "CLIENT_SECRET", "scope": "read write"},
         "headers": {"X-Env": "prod"}},
        {"name": "slack", "type": "slack", "auth": {"type": "bearer", "secret": "SLACK_TOKEN"}},
    ]}
    from engine.store.rule_files import apply_loaded, to_yaml

    again = apply_loaded(rt.catalog, load_texts(
        {"all.yaml": to_yaml(merged_document(docs))}))
    assert {(c.kind, c.name, c.action) for c in again if c.kind == "connection"} == {
        ("connection", "idp", "unchanged"), ("connection", "slack", "unchanged")}


class TokenServer:
    """An OAuth 2.0 token endpoint (client credentials) on the sink, counting requests."""

    def __init__(self, expires_in: float) -> None:
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, rec: Recorded) -> Reply | None:
        if rec.path != "/oauth/token":
            return None
        form = parse_qs(rec.body.decode())
        basic = base64.b64decode(rec.headers["authorization"].split()[1]).decode()
        if form.get("grant_type") != ["client_credentials"] or \
                basic != f"hookwise:{CLIENT_SECRET}" or form.get("scope") != ["orders:write"]:
            return Reply(status=401, json={"error": "invalid_client"})
        with self.lock:
            token = f"at-{len(self.issued) + 1}-b9f3"
            self.issued.append(token)
        return Reply(json={"access_token": token, "token_type": "Bearer",
                           "expires_in": self.expires_in})


OAUTH_RULES = """
sources: [{{slug: s}}]
connections:
  - name: orders
    base_url: "{url}/api"
    auth: {{type: oauth2_client_credentials, token_url: "{url}/oauth/token",
           client_id: hookwise, secret: CLIENT_SECRET, scope: "orders:write"}}
rules:
  - name: r
    source: s
    actions:
      - {{id: one, type: webhook, connection: orders, url: /one, json: {{}}}}
      - {{id: two, type: webhook, connection: orders, url: /two, json: {{}}}}
"""


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_oauth2_token_is_cached_across_steps_refreshed_after_expiry_and_on_401(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path, redis_client):
    tokens = TokenServer(expires_in=3)
    sink.handler = tokens
    set_secrets(rt)
    apply(rt, tmp_path, OAUTH_RULES.format(url=sink.url))

    for _ in range(2):
        client.post("/hooks/s", json={})
    work(until=settled(rt, 2))
    calls = [r for r in sink.requests if r.path.startswith("/api/")]
    assert len(calls) == 4
    assert tokens.issued == ["at-1-b9f3"]  # one token for two steps of two events
    assert {r.headers["authorization"] for r in calls} == {"Bearer at-1-b9f3"}
    # cached in Redis until shortly before it expires, under a key that names no secret
    [key] = redis_client.keys("hookwise:oauth2:*")
    assert 0 < redis_client.pttl(key) <= 3000

    time.sleep(3.1)  # expired: the next call fetches a new one
    client.post("/hooks/s", json={})
    work(until=settled(rt, 3))
    assert tokens.issued == ["at-1-b9f3", "at-2-b9f3"]
    assert sink.requests[-1].headers["authorization"] == "Bearer at-2-b9f3"

    # the API refuses the token (revoked early): a new one is fetched and the call made again
    sink.queue("/api/one", Reply(status=401, json={"error": "token revoked"}))
    client.post("/hooks/s", json={})
    work(until=settled(rt, 4))
    assert tokens.issued == ["at-1-b9f3", "at-2-b9f3", "at-3-b9f3"]
    ones = [r.headers["authorization"] for r in sink.requests if r.path == "/api/one"]
    assert ones[-2:] == ["Bearer at-2-b9f3", "Bearer at-3-b9f3"]
    assert all(status(e.status) == "succeeded" for e in executions(rt))
    rows = steps(rt)
    assert rows["one"].output["request"]["headers"]["authorization"] == \
        "Bearer [secret:CLIENT_SECRET]"
    assert_no_secret_stored(rt, *tokens.issued)


def test_oauth2_token_endpoint_refusal_fails_the_step_with_its_error(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    sink.handler = TokenServer(expires_in=60)
    rt.secrets.set("CLIENT_SECRET", "wrong-secret-value")
    apply(rt, tmp_path, OAUTH_RULES.format(url=sink.url))
    client.post("/hooks/s", json={})
    work(until=settled(rt))
    row = steps(rt)["one"]
    assert status(row.status) == "failed"
    assert "connection orders: token endpoint" in row.error
    assert "answered 401 without an access token: invalid_client" in row.error
    assert "wrong-secret-value" not in stored_text(rt)


def typed_rules(url: str, connection: str, path: str) -> str:
    return f"""
sources: [{{slug: s}}]
connections:
  - {{name: slack, type: slack, base_url: "{url}/slack/api",
     auth: {{type: bearer, secret: SLACK_TOKEN}}}}
  - {{name: tg, type: telegram, base_url: "{url}/tg", auth: {{type: bearer, secret: TG_TOKEN}}}}
  - {{name: discord, type: discord, base_url: "{url}/discord",
     auth: {{type: bearer, secret: DISCORD_TOKEN}}}}
  - {{name: teams, type: teams, base_url: "{url}/teams/webhook/abc"}}
  - {{name: stripe, type: stripe, base_url: "{url}/stripe/v1",
     auth: {{type: bearer, secret: STRIPE_KEY}}}}
  - {{name: twilio, type: twilio, base_url: "{url}/twilio/2010-04-01",
     auth: {{type: basic, username: AC123, secret: TWILIO_TOKEN}}}}
rules:
  - name: r
    source: s
    actions:
      - id: call
        type: webhook
        connection: {connection}
        url: "{path}"
        json: {{channel: C1, text: hi}}
        retry: {{max_attempts: 3, initial_s: 1}}
"""


def post_typed(rt, client, work, tmp_path, sink, connection: str, url: str):  # type: ignore[no-untyped-def]
    set_secrets(rt)
    apply(rt, tmp_path, typed_rules(sink.url, connection, url))
    client.post("/hooks/s", json={})
    work(until=settled(rt))
    return steps(rt)["call"]


def test_slack_ok_false_is_a_failure_with_slacks_error(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    sink.respond("/slack/api/chat.postMessage",
                 Reply(json={"ok": False, "error": "channel_not_found"}))
    row = post_typed(rt, client, work, tmp_path, sink, "slack", "chat.postMessage")
    assert status(row.status) == "failed"
    assert row.attempts == 1  # permanent: not retried
    assert row.error == "slack answered ok: false: channel_not_found"
    [req] = sink.requests
    assert req.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert req.json() == {"channel": "C1", "text": "hi"}
    assert_no_secret_stored(rt)


def test_slack_ratelimited_waits_for_retry_after(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    sink.respond("/slack/api/chat.postMessage",
                 Reply(status=429, headers={"Retry-After": "40"},
                       json={"ok": False, "error": "ratelimited"}))
    before = datetime.now(UTC)
    row = post_typed(rt, client, work, tmp_path, sink, "slack", "chat.postMessage")
    assert status(row.status) == "waiting"
    assert "slack rate limited the call (429)" in (row.error or "")
    wait = (row.next_attempt_at.replace(tzinfo=UTC) - before).total_seconds()
    assert 39 <= wait <= 45  # Retry-After, not the 1 s of the retry policy


def test_telegram_429_honours_parameters_retry_after_and_hides_the_token(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    path = f"/tg/bot{TG_TOKEN}/sendMessage"
    sink.respond(path, Reply(status=429, json={
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 33",
        "parameters": {"retry_after": 33}}))
    before = datetime.now(UTC)
    row = post_typed(rt, client, work, tmp_path, sink, "tg", "sendMessage")
    [req] = sink.requests
    assert req.path == path  # the token goes in the path, as the Bot API wants
    assert "authorization" not in req.headers
    assert status(row.status) == "waiting"
    assert row.error == "telegram answered ok: false: Too Many Requests: retry after 33"
    wait = (row.next_attempt_at.replace(tzinfo=UTC) - before).total_seconds()
    assert 32 <= wait <= 38
    assert row.output["request"]["url"] == f"{sink.url}/tg/bot[secret:TG_TOKEN]/sendMessage"
    assert_no_secret_stored(rt)


def test_telegram_ok_false_is_a_permanent_failure_with_its_description(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    sink.respond(f"/tg/bot{TG_TOKEN}/sendMessage", Reply(status=400, json={
        "ok": False, "error_code": 400, "description": "Bad Request: chat not found"}))
    row = post_typed(rt, client, work, tmp_path, sink, "tg", "sendMessage")
    assert status(row.status) == "failed" and row.attempts == 1
    assert row.error == "telegram answered ok: false: Bad Request: chat not found"


def test_discord_429_body_retry_after_and_bot_token(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    sink.respond("/discord/channels/9/messages", Reply(status=429, json={
        "message": "You are being rate limited.", "retry_after": 52.5, "global": False}))
    before = datetime.now(UTC)
    row = post_typed(rt, client, work, tmp_path, sink, "discord", "channels/9/messages")
    [req] = sink.requests
    assert req.headers["authorization"] == f"Bot {DISCORD_TOKEN}"
    assert status(row.status) == "waiting"
    wait = (row.next_attempt_at.replace(tzinfo=UTC) - before).total_seconds()
    assert 51 <= wait <= 58


def test_teams_delivery_failure_in_a_200_is_a_failure(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    sink.respond("/teams/webhook/abc", Reply(status=200, body=(
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
        "HTTP error 400 with ContextId abc"), headers={"Content-Type": "text/plain"}))
    row = post_typed(rt, client, work, tmp_path, sink, "teams", "")
    assert [r.path for r in sink.requests] == ["/teams/webhook/abc"]
    assert status(row.status) == "failed"
    assert row.error.startswith("teams answered: Webhook message delivery failed")


def test_stripe_form_encoded_with_idempotency_key_and_its_error(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    set_secrets(rt)
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
connections:
  - {{name: stripe, type: stripe, base_url: "{sink.url}/v1",
     auth: {{type: bearer, secret: STRIPE_KEY}}}}
rules:
  - name: r
    source: s
    actions:
      - id: refund
        type: webhook
        connection: stripe
        url: refunds
        json: {{payment_intent: "{{{{ body.pi }}}}", amount: 500,
                metadata: {{order: "o-1"}}, expand: [charge]}}
""")
    sink.queue("/v1/refunds", Reply(status=402, json={"error": {
        "type": "card_error", "code": "charge_already_refunded",
        "message": "Charge ch_1 has already been refunded."}}))
    client.post("/hooks/s", json={"pi": "pi_123"})
    work(until=settled(rt))
    [req] = sink.requests
    [ex] = executions(rt)
    assert req.headers["authorization"] == f"Bearer {STRIPE_KEY}"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert req.headers["idempotency-key"] == f"{ex.id}:refund"
    assert parse_qs(req.body.decode()) == {
        "payment_intent": ["pi_123"], "amount": ["500"], "metadata[order]": ["o-1"],
        "expand[0]": ["charge"]}
    row = steps(rt)["refund"]
    assert status(row.status) == "failed"
    assert row.error == ("stripe answered 402: card_error charge_already_refunded "
                         "(Charge ch_1 has already been refunded.)")


def test_twilio_basic_auth_with_the_account_sid_and_a_form(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    sink.respond("/twilio/2010-04-01/Accounts/AC123/Messages.json",
                 Reply(status=201, json={"sid": "SM1", "status": "queued"}))
    set_secrets(rt)
    apply(rt, tmp_path, f"""
sources: [{{slug: s}}]
connections:
  - {{name: twilio, type: twilio, base_url: "{sink.url}/twilio/2010-04-01",
     auth: {{type: basic, username: AC123, secret: TWILIO_TOKEN}}}}
rules:
  - name: r
    source: s
    actions:
      - {{id: sms, type: webhook, connection: twilio, url: Accounts/AC123/Messages.json,
         json: {{To: "+15550100", From: "+15550199", Body: "{{{{ body.text }}}}",
                MediaUrl: [a.png, b.png]}}}}
""")
    client.post("/hooks/s", json={"text": "paid 15 USD"})
    work(until=settled(rt))
    [req] = sink.requests
    assert base64.b64decode(req.headers["authorization"].split()[1]).decode() == \
        f"AC123:{TWILIO_TOKEN}"
    assert parse_qs(req.body.decode()) == {"To": ["+15550100"], "From": ["+15550199"],
                                           "Body": ["paid 15 USD"],
                                           "MediaUrl": ["a.png", "b.png"]}
    row = steps(rt)["sms"]
    assert status(row.status) == "succeeded"
    assert row.output["json"] == {"sid": "SM1", "status": "queued"}
    stored = stored_text(rt)
    assert TWILIO_TOKEN not in stored
    assert base64.b64encode(f"AC123:{TWILIO_TOKEN}".encode()).decode() not in stored


def test_typed_connections_know_their_services_base_urls() -> None:
    from rules.connection_models import parse_connection

    urls = {t: parse_connection({"name": "c", "type": t,
                                 "auth": {"type": a, "secret": "S"} | extra}).url
            for t, a, extra in (("slack", "bearer", {}), ("telegram", "bearer", {}),
                                ("discord", "bearer", {}), ("stripe", "bearer", {}),
                                ("twilio", "basic", {"username": "AC1"}))}
    assert urls == {"slack": "https://slack.com/api", "telegram": "https://api.telegram.org",
                    "discord": "https://discord.com/api/v10",
                    "stripe": "https://api.stripe.com/v1",
                    "twilio": "https://api.twilio.com/2010-04-01"}
    with pytest.raises(RuleValidationError, match="a twilio connection takes auth basic"):
        parse_connection({"name": "c", "type": "twilio",
                          "auth": {"type": "bearer", "secret": "S"}})
    json.dumps(urls)


CONNECTIONS = "/api/v1/connections"


def test_connections_api_crud_names_secrets_only(api, rt, tmp_path):  # type: ignore[no-untyped-def]
    doc = {"name": "crm", "base_url": "https://crm.example.com/api",
           "auth": {"type": "header", "name": "X-Api-Key", "secret": "CRM_KEY"},
           "headers": {"X-Source": "hookwise"}}
    resp = api.post(CONNECTIONS, json=doc)
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    assert {k: created[k] for k in doc} == doc
    assert created["missing_secrets"] == ["CRM_KEY"]  # the name, never a value
    assert resp.headers["Location"] == f"{CONNECTIONS}/crm"
    assert api.post(CONNECTIONS, json=doc).status_code == 409

    rt.secrets.set("CRM_KEY", "crm-value-1234")
    got = api.get(f"{CONNECTIONS}/crm").get_json()
    assert got["missing_secrets"] == [] and "crm-value-1234" not in json.dumps(got)
    assert [c["name"] for c in api.get(CONNECTIONS).get_json()["items"]] == ["crm"]

    bad = api.put(f"{CONNECTIONS}/crm", json={"base_url": "ftp://x", "auth": {"type": "x"}})
    assert bad.status_code == 422
    by_loc = {e["loc"]: e["message"] for e in bad.get_json()["errors"]}
    assert "absolute http(s) URL" in by_loc["base_url"]
    assert by_loc["auth"].startswith("unknown auth type 'x'")
    wrong = api.put(f"{CONNECTIONS}/crm", json={"name": "other", "base_url": "https://x.io"})
    assert wrong.status_code == 422

    put = api.put(f"{CONNECTIONS}/crm", json={"type": "slack",
                                              "auth": {"type": "bearer", "secret": "S"}})
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["type"] == "slack" and "base_url" not in put.get_json()
    assert api.put(f"{CONNECTIONS}/new", json={"base_url": "https://n.io"}).status_code == 201

    # in use by a rule: not deleted
    apply(rt, tmp_path, """
sources: [{slug: s}]
rules:
  - name: notify
    source: s
    actions:
      - {id: b, type: branch, cases: [{when: {path: $.body.x, op: exists},
         steps: [{id: n, type: webhook, connection: crm, url: chat.postMessage}]}]}
""")
    used = api.delete(f"{CONNECTIONS}/crm")
    assert used.status_code == 409
    assert "used by rule(s) notify" in used.get_json()["message"]
    assert api.delete(f"{CONNECTIONS}/new").status_code == 204
    assert api.get(f"{CONNECTIONS}/new").status_code == 404
    assert api.delete(f"{CONNECTIONS}/new").status_code == 404
    doc_paths = api.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"/api/v1/connections", "/api/v1/connections/{name}"} <= set(doc_paths)


def test_ui_connections_page_creates_edits_and_deletes(client, user, rt, tmp_path):  # type: ignore[no-untyped-def]
    from tests.integration.test_ui_pages import log_in, post_form, text_of

    ui = log_in(client)
    assert "No connections yet" in text_of(ui.get("/connections"))
    assert 'href="/connections"' in text_of(ui.get("/"))  # in the navigation

    bad = post_form(ui, "/connections/new", {
        "name": "crm", "type": "http", "base_url": "ftp://crm", "auth.type": "basic",
        "auth.secret": "CRM_PASSWORD"})
    assert bad.status_code == 400
    page = text_of(bad)
    assert "base_url must be an absolute http(s) URL" in page
    assert "auth.username" in page or "username" in page

    made = post_form(ui, "/connections/new", {
        "name": "crm", "type": "http", "base_url": "https://crm.example.com/api",
        "auth.type": "basic", "auth.username": "ops", "auth.secret": "CRM_PASSWORD",
        "auth.name": "ignored for basic", "headers": "X-Env: prod\n"})
    assert made.status_code == 302, text_of(made)
    assert parse_connection_row(rt, "crm") == {
        "name": "crm", "base_url": "https://crm.example.com/api",
        "auth": {"type": "basic", "username": "ops", "secret": "CRM_PASSWORD"},
        "headers": {"X-Env": "prod"}}
    listed = text_of(ui.get("/connections"))
    assert "https://crm.example.com/api" in listed and "not set: CRM_PASSWORD" in listed

    edit = text_of(ui.get("/connections/crm"))
    assert 'value="ops"' in edit and "X-Env: prod" in edit
    saved = post_form(ui, "/connections/crm", {"type": "slack", "auth.type": "bearer",
                                               "auth.secret": "SLACK_TOKEN"})
    assert saved.status_code == 302, text_of(saved)
    assert parse_connection_row(rt, "crm") == {
        "name": "crm", "type": "slack", "auth": {"type": "bearer", "secret": "SLACK_TOKEN"}}
    assert "https://slack.com/api" in text_of(ui.get("/connections"))

    apply(rt, tmp_path, """
sources: [{slug: s}]
rules:
  - {name: uses, source: s, actions: [{type: webhook, connection: crm, url: x}]}
""")
    assert "cannot be deleted while rules use it" in text_of(ui.get("/connections/crm/delete"))
    kept = post_form(ui, "/connections/crm/delete", {})
    assert kept.status_code == 302 and parse_connection_row(rt, "crm") is not None
    rt.catalog.delete_rule("uses")
    gone = post_form(ui, "/connections/crm/delete", {})
    assert gone.status_code == 302
    assert parse_connection_row(rt, "crm") is None
    assert ui.get("/connections/crm").status_code == 404


def parse_connection_row(rt, name: str):  # type: ignore[no-untyped-def]
    from engine.store.connections import get_row

    row = get_row(rt.db, name)
    return None if row is None else row.spec


def test_the_readme_connection_example_is_a_valid_rule_file() -> None:
    import re
    from pathlib import Path

    from rules.schema import parse_rule_file
    from rules.validation import load_yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Connections: base URL, auth and headers, by name", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    doc = parse_rule_file(load_yaml(block.group(1), file="README.md"), file="README.md")
    [conn] = doc.connections
    assert (conn.type, conn.url) == ("slack", "https://slack.com/api")
    assert doc.rules[0].actions[0].connection == "slack"  # type: ignore[union-attr]


def test_service_hosts_get_default_destination_limits(rt, tmp_path):  # type: ignore[no-untyped-def]
    catalog = rt.catalog
    tg = catalog.destination("https://api.telegram.org:443")
    assert tg is not None and tg.rate_limit is not None
    assert (tg.rate_limit.requests, tg.rate_limit.per_s) == (30, 1)
    assert catalog.destination("https://discord.com:443").rate_limit.requests == 50
    assert catalog.destination("https://api.stripe.com:443").rate_limit.requests == 100
    assert catalog.destination("https://example.com:443") is None
    apply(rt, tmp_path, """
destinations:
  - {host: api.telegram.org, rate_limit: {requests: 5, per_s: 1}}
  - {host: example.com, concurrency: 3}
""")
    catalog.invalidate()
    # a configured entry wins over the service's default; other services keep theirs
    assert catalog.destination("https://api.telegram.org:443").rate_limit.requests == 5
    assert catalog.destination("https://discord.com:443").rate_limit.requests == 50
    assert catalog.destination("https://example.com:443").concurrency == 3


def test_a_secret_that_verifies_a_source_is_not_sent_through_a_connection(  # type: ignore[no-untyped-def]
        rt, client, sink, work, tmp_path):
    rt.secrets.set("SHARED", "shared-verify-value")
    apply(rt, tmp_path, f"""
sources:
  - {{slug: s}}
  - {{slug: guarded, verify: {{scheme: token, secret: SHARED}}}}
connections: [{{name: c, base_url: "{sink.url}", auth: {{type: bearer, secret: SHARED}}}}]
rules:
  - {{name: r, source: s, actions: [{{id: out, type: webhook, connection: c, url: /x}}]}}
""")
    client.post("/hooks/s", json={})
    work(until=settled(rt))
    row = steps(rt)["out"]
    assert status(row.status) == "failed"
    assert row.error.startswith("connection c: secret 'SHARED' verifies the webhooks of "
                                "source 'guarded'")
    assert sink.requests == []
