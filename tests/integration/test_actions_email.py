"""The email action against a real aiosmtpd server on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from engine.actions import email as email_action
from engine.actions.base import StepContext
from engine.errors import PermanentActionError, TransientActionError
from engine.settings import Settings
from tests.servers import SmtpSink, free_port

MakeCtx = Callable[..., StepContext]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture
def make_ctx(tmp_path: Path) -> Iterator[MakeCtx]:
    """Build StepContexts; ``smtp_url=None`` leaves HOOKWISE_SMTP_URL unset."""
    client = httpx.Client()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'engine.db'}")

    def make(smtp_url: str | None, **env: str) -> StepContext:
        values = {"HOOKWISE_DATA_DIR": str(tmp_path), "HOOKWISE_SECRET_KEY": "x", **env}
        if smtp_url:
            values["HOOKWISE_SMTP_URL"] = smtp_url
        return StepContext(
            settings=Settings.from_env(values),
            execution_id="ex1",
            step_id="thanks",
            attempt=1,
            http=client,
            db=engine,
        )

    yield make
    client.close()
    engine.dispose()


def test_text_only(smtp: SmtpSink, make_ctx: MakeCtx):
    ctx = make_ctx(smtp.url, HOOKWISE_EMAIL_FROM="Hookwise <noreply@hookwise.test>")
    out = email_action.run(
        {"to": "ann@example.com", "subject": "Thanks\nfor paying", "text": "We got 15 USD."},
        ctx,
    )
    [msg] = smtp.wait_for(1)
    assert msg["To"] == "ann@example.com"
    assert msg["From"] == "Hookwise <noreply@hookwise.test>"
    assert msg["Subject"] == "Thanks for paying"
    assert msg["X-Hookwise-Idempotency-Key"] == "ex1:thanks"
    assert msg["Message-ID"].strip() == out["message_id"]  # 3.11's parser keeps a space
    assert out["message_id"].endswith("@hookwise.test>")
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "We got 15 USD."
    assert out["to"] == ["ann@example.com"]
    assert out["accepted"] == ["ann@example.com"]
    assert out["refused"] == {}
    assert smtp.envelopes[0].mail_from == "noreply@hookwise.test"


def test_html_and_text_make_multipart_alternative(smtp: SmtpSink, make_ctx: MakeCtx):
    email_action.run(
        {
            "to": ["ann@example.com"],
            "from": "Billing <billing@shop.test>",
            "reply_to": "help@shop.test",
            "subject": "Receipt",
            "text": "Total: 15 €",
            "html": "<p>Total: <b>15 €</b></p>",
        },
        make_ctx(smtp.url),
    )
    [msg] = smtp.wait_for(1)
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert plain is not None and plain.get_content().strip() == "Total: 15 €"
    assert html is not None and "<b>15 €</b>" in html.get_content()
    assert msg["Reply-To"] == "help@shop.test"
    assert smtp.envelopes[0].mail_from == "billing@shop.test"


def test_html_only(smtp: SmtpSink, make_ctx: MakeCtx):
    email_action.run({"to": "a@example.com", "html": "<h1>Hi</h1>"}, make_ctx(smtp.url))
    [msg] = smtp.wait_for(1)
    assert msg.get_content_type() == "text/html"


def test_cc_and_bcc_reach_the_server_but_bcc_is_not_a_header(smtp: SmtpSink, make_ctx: MakeCtx):
    out = email_action.run(
        {
            "to": "Ann <ann@example.com>, bob@example.com",
            "cc": ["carol@example.com"],
            "bcc": "dave@example.com",
            "subject": "s",
            "text": "t",
        },
        make_ctx(smtp.url),
    )
    [msg] = smtp.wait_for(1)
    rcpts = smtp.envelopes[0].rcpt_tos
    assert sorted(rcpts) == sorted(
        ["ann@example.com", "bob@example.com", "carol@example.com", "dave@example.com"]
    )
    assert msg["Cc"] == "carol@example.com"
    assert "Bcc" not in msg
    assert "dave@example.com" not in msg.as_string()
    assert out["to"] == ["ann@example.com", "bob@example.com"]
    assert sorted(out["accepted"]) == sorted(rcpts)


def test_some_recipients_refused(smtp: SmtpSink, make_ctx: MakeCtx):
    smtp.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    out = email_action.run(
        {"to": ["ann@example.com", "gone@example.com"], "text": "t"}, make_ctx(smtp.url)
    )
    assert out["accepted"] == ["ann@example.com"]
    assert out["refused"]["gone@example.com"].startswith("550")


def test_all_recipients_refused_5xx_is_permanent(smtp: SmtpSink, make_ctx: MakeCtx):
    smtp.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    with pytest.raises(PermanentActionError, match="every recipient was refused"):
        email_action.run({"to": "gone@example.com", "text": "t"}, make_ctx(smtp.url))


def test_4xx_reply_is_transient(smtp: SmtpSink, make_ctx: MakeCtx):
    smtp.data_reply = "451 4.3.0 try again later"
    with pytest.raises(TransientActionError, match="451"):
        email_action.run({"to": "ann@example.com", "text": "t"}, make_ctx(smtp.url))


def test_5xx_data_reply_is_permanent(smtp: SmtpSink, make_ctx: MakeCtx):
    smtp.data_reply = "554 5.7.1 rejected as spam"
    with pytest.raises(PermanentActionError, match="554"):
        email_action.run({"to": "ann@example.com", "text": "t"}, make_ctx(smtp.url))


def test_no_smtp_configured_is_permanent(make_ctx: MakeCtx):
    with pytest.raises(PermanentActionError, match="^email steps need HOOKWISE_SMTP_URL$"):
        email_action.run({"to": "ann@example.com", "text": "t"}, make_ctx(None))


def test_refused_port_is_transient(make_ctx: MakeCtx):
    ctx = make_ctx(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    with pytest.raises(TransientActionError, match="could not talk to SMTP server"):
        email_action.run({"to": "ann@example.com", "text": "t"}, ctx)


@pytest.mark.parametrize(
    ("rendered", "match"),
    [
        ({"to": "not an address"}, "to: invalid address"),
        ({"to": "x@"}, "to: invalid address"),
        ({"to": "@example.com"}, "to: invalid address"),
        ({"to": "ann@example.com\r\nBcc: evil@example.com"}, "line break"),
        ({"to": "ann@example.com", "cc": ["ok@example.com", "broken"]}, "cc: invalid address"),
        ({"to": "ann@example.com", "from": "a@x.test, b@x.test"}, "exactly one address"),
        ({"to": ""}, "at least one recipient"),
        ({"to": ["ann@example.com", 5]}, "expected an address"),
    ],
)
def test_bad_addresses_are_permanent(smtp: SmtpSink, make_ctx: MakeCtx, rendered: dict, match: str):
    with pytest.raises(PermanentActionError, match=match):
        email_action.run({"text": "t", **rendered}, make_ctx(smtp.url))
    assert smtp.envelopes == []


def test_starttls_required_but_not_offered_is_permanent(smtp: SmtpSink, make_ctx: MakeCtx):
    ctx = make_ctx(f"{smtp.url}?starttls=true")
    with pytest.raises(PermanentActionError, match="does not support"):
        email_action.run({"to": "ann@example.com", "text": "t"}, ctx)
    assert smtp.envelopes == []
