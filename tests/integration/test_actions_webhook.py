"""The webhook action against a real HTTP server on loopback."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from engine.actions import webhook
from engine.actions.base import StepContext
from engine.errors import PermanentActionError, TransientActionError
from engine.outbound.http import build_http_client
from engine.settings import Settings
from tests.servers import HttpSink, Reply, free_port

MakeCtx = Callable[..., StepContext]


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as s:
        yield s


@pytest.fixture
def make_ctx(tmp_path: Path) -> Iterator[MakeCtx]:
    """Build StepContexts; ``allow`` is HOOKWISE_EGRESS_ALLOW (loopback by default)."""
    clients: list[httpx.Client] = []
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'engine.db'}")

    def make(*, allow: str = "127.0.0.0/8", attempt: int = 1, step_id: str = "s1") -> StepContext:
        settings = Settings.from_env(
            {
                "HOOKWISE_DATA_DIR": str(tmp_path),
                "HOOKWISE_SECRET_KEY": "x",
                "HOOKWISE_EGRESS_ALLOW": allow,
            }
        )
        client = build_http_client(settings)
        clients.append(client)
        return StepContext(
            settings=settings,
            execution_id="ex1",
            step_id=step_id,
            attempt=attempt,
            http=client,
            db=engine,
        )

    yield make
    for client in clients:
        client.close()
    engine.dispose()


def test_post_json_with_headers_query_and_idempotency_key(sink: HttpSink, make_ctx: MakeCtx):
    sink.respond("/hook", Reply(status=201, headers={"X-Reply": "yes"}, json={"id": 7}))
    out = webhook.run(
        {
            "url": f"{sink.url}/hook?fixed=1&channel=old",
            "method": "post",
            "headers": {"Authorization": "Bearer t0k", "X-Empty": None},
            "query": {"channel": "#ops", "tag": ["a", "b"], "flag": True},
            "json": {"text": "Paid 15 USD", "amount": 1500, "ok": True, "none": None},
            "timeout_s": 5,
        },
        make_ctx(),
    )
    [req] = sink.wait_for(1)
    assert req.method == "POST"
    assert req.path == "/hook"
    assert req.json() == {"text": "Paid 15 USD", "amount": 1500, "ok": True, "none": None}
    assert req.headers["content-type"] == "application/json"
    assert req.headers["authorization"] == "Bearer t0k"
    assert "x-empty" not in req.headers
    assert req.headers["idempotency-key"] == "ex1:s1"
    assert req.headers["user-agent"] == "Hookwise/0.1"
    assert "fixed=1" in req.raw_path and "tag=a&tag=b" in req.raw_path
    assert req.query["channel"] == "#ops" and req.query["flag"] == "true"

    assert out["status"] == 201
    assert out["json"] == {"id": 7}
    assert out["headers"]["x-reply"] == "yes"
    assert json.loads(out["text"]) == {"id": 7}
    assert out["url"].startswith(f"{sink.url}/hook?")
    assert isinstance(out["elapsed_ms"], float) and out["elapsed_ms"] >= 0
    json.dumps(out)  # the output is stored as JSON


def test_raw_body_and_user_idempotency_key(sink: HttpSink, make_ctx: MakeCtx):
    sink.respond(
        "/raw", Reply(status=200, body="plain answer", headers={"Content-Type": "text/plain"})
    )
    out = webhook.run(
        {
            "url": f"{sink.url}/raw",
            "method": "PUT",
            "headers": {"Idempotency-Key": "mine", "Content-Type": "application/xml"},
            "body": "<a>1</a>",
        },
        make_ctx(),
    )
    [req] = sink.wait_for(1)
    assert (req.method, req.body) == ("PUT", b"<a>1</a>")
    assert req.headers["content-type"] == "application/xml"
    assert req.headers["idempotency-key"] == "mine"
    assert out["json"] is None and out["text"] == "plain answer"


def test_get_without_body(sink: HttpSink, make_ctx: MakeCtx):
    out = webhook.run({"url": f"{sink.url}/g", "method": "GET"}, make_ctx())
    [req] = sink.wait_for(1)
    assert req.method == "GET" and req.body == b""
    assert out["json"] == {"ok": True}


def test_large_text_is_capped(sink: HttpSink, make_ctx: MakeCtx):
    sink.respond("/big", Reply(body="x" * 200_000, headers={"Content-Type": "text/plain"}))
    out = webhook.run({"url": f"{sink.url}/big"}, make_ctx())
    assert len(out["text"]) == 64 * 1024


def test_500_is_transient_with_output(sink: HttpSink, make_ctx: MakeCtx):
    sink.respond("/h", Reply(status=500, json={"error": "boom"}))
    with pytest.raises(TransientActionError) as info:
        webhook.run({"url": f"{sink.url}/h", "json": {}}, make_ctx())
    assert str(info.value) == "target answered 500 Internal Server Error"
    assert info.value.output is not None
    assert info.value.output["status"] == 500
    assert info.value.output["json"] == {"error": "boom"}
    assert info.value.retry_after is None


def test_429_retry_after_seconds(sink: HttpSink, make_ctx: MakeCtx):
    sink.respond("/h", Reply(status=429, headers={"Retry-After": "120"}))
    with pytest.raises(TransientActionError) as info:
        webhook.run({"url": f"{sink.url}/h", "json": {}}, make_ctx())
    assert info.value.retry_after == 120.0
    assert info.value.output is not None and info.value.output["status"] == 429


def test_503_retry_after_http_date(sink: HttpSink, make_ctx: MakeCtx):
    when = datetime.now(UTC) + timedelta(seconds=90)
    sink.respond(
        "/h", Reply(status=503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    )
    with pytest.raises(TransientActionError) as info:
        webhook.run({"url": f"{sink.url}/h", "json": {}}, make_ctx())
    assert info.value.retry_after is not None and 80 <= info.value.retry_after <= 91


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0", 0.0), ("-3", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_parse_retry_after(value: str | None, expected: float | None):
    assert webhook.parse_retry_after(value) == expected


def test_404_is_permanent(sink: HttpSink, make_ctx: MakeCtx):
    sink.respond("/h", Reply(status=404, json={"detail": "nope"}))
    with pytest.raises(PermanentActionError) as info:
        webhook.run({"url": f"{sink.url}/h", "json": {}}, make_ctx())
    assert str(info.value) == "target answered 404 Not Found"
    assert info.value.output is not None and info.value.output["json"] == {"detail": "nope"}


def test_302_is_permanent_and_not_followed(sink: HttpSink, make_ctx: MakeCtx):
    sink.respond("/old", Reply(status=302, headers={"Location": f"{sink.url}/new"}))
    with pytest.raises(PermanentActionError) as info:
        webhook.run({"url": f"{sink.url}/old", "json": {}}, make_ctx())
    assert str(info.value) == f"redirect not followed: 302 to {sink.url}/new"
    assert [r.path for r in sink.requests] == ["/old"]


def test_timeout_is_transient(sink: HttpSink, make_ctx: MakeCtx):
    sink.respond("/slow", Reply(delay=3))
    with pytest.raises(TransientActionError, match="timed out"):
        webhook.run({"url": f"{sink.url}/slow", "json": {}, "timeout_s": 0.3}, make_ctx())


def test_connection_refused_is_transient(make_ctx: MakeCtx):
    with pytest.raises(TransientActionError, match="could not reach 127.0.0.1"):
        webhook.run({"url": f"http://127.0.0.1:{free_port()}/", "json": {}}, make_ctx())


def test_loopback_refused_without_allow(sink: HttpSink, make_ctx: MakeCtx):
    with pytest.raises(PermanentActionError) as info:
        webhook.run({"url": f"{sink.url}/h", "json": {}}, make_ctx(allow=""))
    assert str(info.value) == (
        "egress refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address; "
        "allow it with HOOKWISE_EGRESS_ALLOW"
    )
    assert sink.requests == []


@pytest.mark.parametrize(
    ("rendered", "match"),
    [
        ({"url": "ftp://example.com/x"}, "scheme must be http or https"),
        ({"url": "file:///etc/passwd"}, "scheme must be http or https"),
        ({"url": "http://"}, "no host|invalid url"),
        ({"url": "not a url"}, "scheme must be http or https|invalid url"),
        ({"url": ""}, "needs a url"),
        ({"url": "http://example.com", "json": {}, "body": "x"}, "one of json or body"),
        ({"url": "http://example.com", "timeout_s": "soon"}, "timeout_s must be a number"),
        ({"url": "http://example.com", "method": "GE T"}, "invalid HTTP method"),
        ({"url": "http://example.com", "sign": {"scheme": "pgp", "secret": "s"}}, "signing"),
        ({"url": "http://example.com", "sign": {"scheme": "standard", "secret": ""}}, "empty"),
        ({"url": "http://example.com", "json": float("nan")}, "not JSON"),
    ],
)
def test_bad_input_is_permanent(make_ctx: MakeCtx, rendered: dict, match: str):
    with pytest.raises(PermanentActionError, match=match):
        webhook.run(rendered, make_ctx())


def test_standard_webhooks_signature_is_stable_across_attempts(sink: HttpSink, make_ctx: MakeCtx):
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    sink.queue("/signed", Reply(status=503), Reply(status=200))
    rendered = {
        "url": f"{sink.url}/signed",
        "json": {"type": "payment.succeeded", "amount": 1500},
        "sign": {"scheme": "standard", "secret": secret},
    }
    with pytest.raises(TransientActionError):
        webhook.run(rendered, make_ctx(attempt=1))
    webhook.run(rendered, make_ctx(attempt=2))
    first, second = sink.wait_for(2)

    verifier = Webhook(secret)
    for req in (first, second):
        assert verifier.verify(req.body, req.headers) == rendered["json"]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-id"].startswith("msg_")
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "ex1:s1"

    other_step = make_ctx(step_id="s2")
    webhook.run(rendered, other_step)
    assert sink.wait_for(3)[2].headers["webhook-id"] != first.headers["webhook-id"]


def test_signature_rejects_tampered_body(sink: HttpSink, make_ctx: MakeCtx):
    from standardwebhooks.webhooks import WebhookVerificationError

    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    webhook.run(
        {"url": f"{sink.url}/s", "body": "hello", "sign": {"scheme": "standard", "secret": secret}},
        make_ctx(),
    )
    [req] = sink.wait_for(1)
    Webhook(secret).verify(req.body, req.headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b"hellO", req.headers, json_parse=False)


def test_cookies_a_destination_sets_are_not_sent_on_later_steps(sink: HttpSink, make_ctx: MakeCtx):
    """One client serves every rule: a Set-Cookie must not ride along on the next step."""
    sink.respond("/login", Reply(headers={"Set-Cookie": "session=abc; Path=/"}, json={}))
    ctx = make_ctx()
    webhook.run({"url": f"{sink.url}/login"}, ctx)
    webhook.run({"url": f"{sink.url}/next"}, ctx)  # same client, same host
    webhook.run({"url": f"{sink.url}/own", "headers": {"Cookie": "mine=1"}}, ctx)
    login, nxt, own = sink.wait_for(3)
    assert "cookie" not in nxt.headers
    assert own.headers["cookie"] == "mine=1"  # a step's own Cookie header still goes out
