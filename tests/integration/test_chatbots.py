"""Chat-bot starters through real workers: a Slack slash command answered synchronously
after an outgoing lookup (and its fallback when the lookup is too slow), a Telegram
conversation whose memory carries from turn to turn and then expires, and a Twilio SMS
answered with escaped TwiML."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text as sql
from sqlmodel import Session
from twilio.request_validator import RequestValidator

from engine.ids import utcnow
from engine.store.conversations import StateStore
from engine.store.models import ConversationState
from engine.store.queries import get_event
from tests.integration.test_starters import (
    apply_starter,
    run_event,
    sample,
    set_secrets,
    step_statuses,
)
from tests.servers import Recorded, Reply

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
WEATHER = {"city": "Berlin", "temp_c": 21.5, "summary": "sunny"}
ANSWER = "Weather in Berlin: 21.5 °C, sunny (asked by <@U2147483697>)"


def post_in_thread(fn):  # type: ignore[no-untyped-def]
    """Run ``fn()`` (a blocking ingest call) in a thread; its response and duration."""
    result: dict = {}

    def go() -> None:
        t0 = time.monotonic()
        result["resp"] = fn()
        result["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=go)
    t.start()
    return t, result


# -- Slack slash command ------------------------------------------------------------------
def slack_setup(rt, tmp_path, sink) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "slack-slash-command")
    set_secrets(rt, SLACK_SIGNING_SECRET=SLACK_SECRET, WEATHER_API_URL=sink.url,
                WEATHER_API_TOKEN="wx-token")


def slash_command(client, sink):  # type: ignore[no-untyped-def]
    fields = {**sample("slack-slash-command"),
              "response_url": f"{sink.url}/commands/1234/5678"}
    body = urlencode(fields).encode()  # Slack posts form-encoded fields
    ts = str(int(time.time()))
    sig = SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=ts, body=body)
    return post_in_thread(lambda: client.post(
        "/hooks/slack-commands", data=body, content_type="application/x-www-form-urlencoded",
        headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}))


def test_slash_command_answered_after_lookup(rt, client, work, sink, tmp_path) -> None:  # type: ignore[no-untyped-def]
    slack_setup(rt, tmp_path, sink)
    lookups: list[float] = []

    def weather_api(req: Recorded) -> Reply | None:
        if req.path == "/v1/current":
            lookups.append(time.monotonic())
            return Reply(json=WEATHER)
        return None

    sink.handler = weather_api
    t, result = slash_command(client, sink)
    work(until=lambda: not t.is_alive(), timeout=10)  # a real worker runs while Slack waits
    t.join()
    answered_at = time.monotonic()

    resp = result["resp"]
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"response_type": "in_channel", "text": ANSWER}
    assert result["elapsed"] < 2.5  # within the reply deadline, so well within Slack's 3 s
    [lookup] = sink.wait_for(1)  # the lookup happened, before the answer and with its value
    assert lookup.method == "GET" and lookup.query == {"city": "berlin"}
    assert lookup.headers["authorization"] == "Bearer wx-token"
    assert len(lookups) == 1 and lookups[0] < answered_at

    info = run_event(work, rt, resp.headers["X-Hookwise-Event-Id"])
    assert step_statuses(info) == {"lookup": "succeeded", "answer": "succeeded",
                                   "follow_up": "skipped"}  # it was in time: no follow-up
    steps = {s["step_id"]: s for s in info["executions"][0]["steps"]}
    assert steps["lookup"]["finished_at"] <= steps["answer"]["started_at"]
    assert len(sink.requests) == 1


def test_slow_lookup_gets_the_fallback_and_the_answer_follows(rt, client, work, sink,
                                                              tmp_path) -> None:  # type: ignore[no-untyped-def]
    slack_setup(rt, tmp_path, sink)
    sink.respond("/v1/current", Reply(json=WEATHER, delay=2.7))  # past the 2.5 s deadline
    t, result = slash_command(client, sink)
    work(until=lambda: not t.is_alive(), timeout=10)  # the worker is busy in the lookup
    t.join()

    resp = result["resp"]
    assert resp.status_code == 200
    assert resp.get_json() == {"response_type": "ephemeral", "text": "Working on it…"}
    assert 2.4 < result["elapsed"] < 3.0  # Slack got its answer in time anyway

    info = run_event(work, rt, resp.headers["X-Hookwise-Event-Id"])
    assert info["executions"][0]["status"] == "succeeded"
    assert step_statuses(info) == {"lookup": "succeeded", "answer": "succeeded",
                                   "follow_up": "succeeded"}
    lookup, follow_up = sink.wait_for(2)
    assert lookup.path == "/v1/current"
    assert follow_up.path == "/commands/1234/5678"  # the command's response_url
    assert follow_up.json() == {"response_type": "in_channel", "text": ANSWER}


# -- Telegram bot with memory -------------------------------------------------------------
TG_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
TG_SECRET = "tg-secret_token-123"


class Telegram:
    """Posts updates the way Telegram does and runs the workers for each one."""

    def __init__(self, rt, client, work, sink):  # type: ignore[no-untyped-def]
        self.rt, self.client, self.work, self.sink = rt, client, work, sink
        self.update_id = 872461093
        self.sent = 0
        self.case: str | None = None  # the branch case the last turn ran
        self.ran: list[str] = []  # the steps inside the branch that ran, in order

    def say(self, text: str) -> list[str]:
        """Send one message as Ada; the bot's answers (texts sent to sendMessage)."""
        update = sample("telegram-bot")
        self.update_id += 1
        update["update_id"] = self.update_id
        update["message"]["message_id"] = self.update_id - 872460000
        update["message"]["text"] = text
        if not text.startswith("/"):
            update["message"].pop("entities")
        resp = self.client.post("/hooks/telegram", json=update,
                                headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
        assert resp.status_code == 202, resp.get_json()
        info = run_event(self.work, self.rt, resp.get_json()["event_id"])
        [ex] = info["executions"]
        assert ex["status"] == "succeeded", info["executions"]
        # the execution's trace: the memory, the branch (with the case it chose), and the
        # steps of that case only, recorded under the branch's row
        top = [s for s in ex["steps"] if s["parent_position"] is None]
        assert [(s["step_id"], s["type"]) for s in top] == [("memory", "state"),
                                                          ("turn", "branch")]
        turn = top[1]
        assert turn["status"] == "succeeded"
        self.case = turn["output"]["case"]
        inner = [s for s in ex["steps"] if s["parent_position"] == turn["position"]]
        assert all(s["status"] == "succeeded" for s in inner), inner
        self.ran = [s["step_id"] for s in inner]
        new = self.sink.requests[self.sent:]
        self.sent = len(self.sink.requests)
        for req in new:
            assert req.path == f"/bot{TG_TOKEN}/sendMessage"  # the connection's token
            assert req.json()["chat_id"] == 418093562
        return [req.json()["text"] for req in new]


def telegram_starter(rt, tmp_path, sink, edits: dict[str, str] | None = None) -> None:  # type: ignore[no-untyped-def]
    """The starter with its connection's base URL pointed at the sink (the Bot API)."""
    apply_starter(rt, tmp_path, "telegram-bot",
                  {"base_url: https://api.telegram.org": f"base_url: {sink.url}",
                   **(edits or {})})


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_telegram_conversation_remembers_then_forgets(rt, client, work, sink,
                                                      tmp_path) -> None:  # type: ignore[no-untyped-def]
    telegram_starter(rt, tmp_path, sink)
    set_secrets(rt, TELEGRAM_TOKEN=TG_TOKEN, TELEGRAM_SECRET=TG_SECRET)
    tg = Telegram(rt, client, work, sink)

    def turn(text: str, case: str, ran: list[str]) -> list[str]:
        answers = tg.say(text)
        assert (tg.case, tg.ran) == (case, ran), text
        return answers

    assert turn("/whoami", "whoami_unknown", ["whoami_unknown"]) == [
        "I don't know you yet. Send /start and tell me your name."]
    assert turn("/start", "start", ["ask_name", "await_name"]) == ["Hi! What's your name?"]
    assert sink.requests[-1].json()["reply_markup"]["force_reply"] is True
    assert turn("Ada", "name", ["save_name", "greet"]) == [
        "Nice to meet you, Ada! Ask me /whoami any time."]
    assert turn("/whoami", "whoami_known", ["whoami_known"]) == ["You are Ada."]
    assert turn("hello again", "else", ["hint"]) == [
        "Send /start to begin, or /whoami to see what I remember."]
    assert turn("/whoami", "whoami_known", ["whoami_known"]) == ["You are Ada."]
    assert StateStore(rt.db).get("telegram-418093562") == {"stage": "done", "name": "Ada"}
    assert turn("/help", "else", ["hint"]) == [  # a command it does not know: the hint
        "Send /start to begin, or /whoami to see what I remember."]

    # the bot token went only into the Bot API's path: every record shows its name
    with rt.db.connect() as c:
        stored = "\n".join(str(tuple(r)) for table in ("step_runs", "executions", "events")
                           for r in c.execute(sql(f"SELECT * FROM {table}")))  # noqa: S608
    assert TG_TOKEN not in stored and "[secret:TELEGRAM_TOKEN]" in stored

    # The same bot with a two-second memory: the name is kept, then forgotten.
    telegram_starter(rt, tmp_path, sink, {"ttl_s: 3600": "ttl_s: 2"})
    assert turn("/start", "start", ["ask_name", "await_name"]) == ["Hi! What's your name?"]
    assert turn("Grace", "name", ["save_name", "greet"]) == [
        "Nice to meet you, Grace! Ask me /whoami any time."]
    with Session(rt.db) as s:  # stored with a 2 s expiry (read raw: it may be over already)
        row = s.get(ConversationState, "telegram-418093562")
    assert row is not None and row.data == {"stage": "done", "name": "Grace"}
    assert row.expires_at is not None
    assert (row.expires_at - row.updated_at).total_seconds() == 2
    time.sleep(max(0.0, (row.expires_at - utcnow()).total_seconds()) + 0.05)
    assert StateStore(rt.db).get("telegram-418093562") == {}
    assert turn("/whoami", "whoami_unknown", ["whoami_unknown"]) == [
        "I don't know you yet. Send /start and tell me your name."]
    assert turn("Grace", "else", ["hint"]) == [
        "Send /start to begin, or /whoami to see what I remember."]

    # Telegram re-sending an update (same update_id) runs nothing again
    update = sample("telegram-bot")
    update["update_id"] = tg.update_id
    dup = client.post("/hooks/telegram", json=update,
                      headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
    assert dup.status_code == 200 and dup.get_json()["duplicate"] is True
    assert client.post("/hooks/telegram", json=update).status_code == 401  # no secret token


# -- Twilio SMS → TwiML -------------------------------------------------------------------
TWILIO_TOKEN = "12345abcdef12345abcdef12345abcd"


def test_twilio_sms_gets_escaped_twiml(rt, client, work, tmp_path) -> None:  # type: ignore[no-untyped-def]
    apply_starter(rt, tmp_path, "twilio-sms-reply")
    set_secrets(rt, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    fields = {**sample("twilio-sms-reply"),
              "Body": 'Is order <#1042> & "the mug" shipped? </Message><Redirect>x'}
    url = "http://localhost/hooks/twilio-sms"  # the URL Twilio was configured with
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(url, fields)
    t, result = post_in_thread(lambda: client.post(
        "/hooks/twilio-sms", data=urlencode(fields),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": sig, "I-Twilio-Idempotency-Token": "idem-1"}))
    work(until=lambda: not t.is_alive(), timeout=10)
    t.join()

    resp = result["resp"]
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.content_type.startswith("application/xml")
    raw = resp.get_data(as_text=True)
    assert raw.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    assert "&lt;#1042&gt; &amp; &#34;the mug&#34;" in raw and "<Redirect>" not in raw
    root = ET.fromstring(resp.get_data())
    assert root.tag == "Response" and [child.tag for child in root] == ["Message"]
    assert root[0].text == (
        'Thanks, we got your message: “Is order <#1042> & "the mug" shipped? '
        '</Message><Redirect>x”. We will get back to you at +14155550123 shortly.')
    info = get_event(rt.db, resp.headers["X-Hookwise-Event-Id"])
    assert info is not None and info["executions"][0]["status"] == "succeeded"

