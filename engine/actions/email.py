"""The ``email`` action: send one message through the configured SMTP server.

``rendered`` fields (templates already rendered):

    to, cc, bcc   one address or a list; a string may hold several, comma-separated
                  (``"Ann <ann@x.org>, bob@y.org"``). ``to`` is required.
    from          default ``settings.email_from`` (HOOKWISE_EMAIL_FROM)
    reply_to      optional address(es)
    subject       line breaks are folded into spaces
    text, html    bodies; both give multipart/alternative

Every message carries a fresh ``Message-ID`` and ``X-Hookwise-Idempotency-Key:
<execution>:<step>`` (the same across retries, so a receiving system can drop repeats).
Output: ``{"message_id", "to", "accepted", "refused"}`` (``refused`` maps a recipient
the server turned down to its reply, when others were accepted).

Classification: no HOOKWISE_SMTP_URL, a malformed address, a 5xx SMTP reply, a TLS
certificate failure → permanent; connection refused, timeouts, dropped connections and
4xx replies → transient. The SMTP server is operator configuration, not user input, so
the egress guard does not apply to it.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.headerregistry import Address, AddressHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, cast

from engine.actions.base import StepContext
from engine.errors import ActionError, PermanentActionError, TransientActionError
from engine.settings import SmtpSettings

IDEMPOTENCY_HEADER = "X-Hookwise-Idempotency-Key"
_HEADERS = HeaderRegistry()


def run(rendered: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Build the message described by ``rendered`` and hand it to the SMTP server."""
    smtp = ctx.settings.smtp
    if smtp is None:
        raise PermanentActionError("email steps need HOOKWISE_SMTP_URL")
    to = parse_addresses(rendered.get("to"), "to")
    if not to:
        raise PermanentActionError("email step needs at least one recipient in to")
    cc = parse_addresses(rendered.get("cc"), "cc")
    bcc = parse_addresses(rendered.get("bcc"), "bcc")
    senders = parse_addresses(rendered.get("from") or ctx.settings.email_from, "from")
    if len(senders) != 1:
        raise PermanentActionError(f"from must be exactly one address, got {len(senders)}")
    sender = senders[0]
    reply_to = parse_addresses(rendered.get("reply_to"), "reply_to")

    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = " ".join(str(rendered.get("subject") or "").splitlines())
    msg["Date"] = formatdate(localtime=True)
    key_hash = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:16]
    message_id = make_msgid(idstring=key_hash, domain=sender.domain or "hookwise.local")
    msg["Message-ID"] = message_id
    msg[IDEMPOTENCY_HEADER] = ctx.idempotency_key
    _set_body(msg, rendered.get("text"), rendered.get("html"))

    recipients = list(dict.fromkeys(a.addr_spec for a in [*to, *cc, *bcc]))
    refused = _send(smtp, msg, sender.addr_spec, recipients)
    return {
        "message_id": message_id,
        "to": [a.addr_spec for a in to],
        "accepted": [r for r in recipients if r not in refused],
        "refused": refused,
    }


def parse_addresses(value: Any, field: str) -> list[Address]:
    """Addresses from a string (comma-separated allowed), a list of strings, or None.

    Raises ``PermanentActionError`` naming ``field`` and the value for anything that is
    not a well-formed address (including line breaks, which could inject headers).
    """
    if value is None or value == "":
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out: list[Address] = []
    for item in items:
        if item is None or (isinstance(item, str) and not item.strip()):
            continue
        if not isinstance(item, str):
            raise PermanentActionError(f"{field}: expected an address, got {item!r}")
        if "\r" in item or "\n" in item:
            raise PermanentActionError(f"{field}: line break in address {item!r}")
        try:
            # every field parses as an address list, whatever its name
            header = _HEADERS("To", item)
            addresses = list(cast(AddressHeader, header).addresses)
            defects = list(header.defects)
        except Exception as exc:  # the stdlib parser raises IndexError, HeaderParseError, …
            raise PermanentActionError(f"{field}: invalid address {item!r}") from exc
        if defects or not addresses:
            reason = defects[0] if defects else "no address found"
            raise PermanentActionError(f"{field}: invalid address {item!r} ({reason})")
        for addr in addresses:
            if not addr.username or not addr.domain:
                raise PermanentActionError(f"{field}: invalid address {item!r}")
            out.append(addr)
    return out


def _set_body(msg: EmailMessage, text: Any, html: Any) -> None:
    if text is not None and html is not None:
        msg.set_content(str(text))
        msg.add_alternative(str(html), subtype="html")
    elif html is not None:
        msg.set_content(str(html), subtype="html")
    else:
        msg.set_content("" if text is None else str(text))


def _send(
    smtp: SmtpSettings, msg: EmailMessage, sender: str, recipients: list[str]
) -> dict[str, str]:
    """Deliver ``msg``; return refused recipients (when others were accepted)."""
    where = f"{smtp.host}:{smtp.port}"
    try:
        client: smtplib.SMTP
        if smtp.ssl:
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout_s, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with client:
            if smtp.starttls and not smtp.ssl:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            refused = client.send_message(msg, from_addr=sender, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        raise _recipients_refused(exc.recipients) from exc
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, exc.smtp_error, where) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentActionError(f"SMTP server {where} does not support: {exc}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise PermanentActionError(f"TLS certificate of {where} rejected: {exc}") from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused, timeout, reset, TLS
        raise TransientActionError(
            f"could not talk to SMTP server {where}: {exc or type(exc).__name__}"
        ) from exc
    return {addr: f"{code} {_text(reply)}" for addr, (code, reply) in refused.items()}


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def _by_code(code: int, reply: bytes | str, where: str) -> ActionError:
    message = f"SMTP server {where} answered {code} {_text(reply)}"
    return TransientActionError(message) if 400 <= code < 500 else PermanentActionError(message)


def _recipients_refused(recipients: dict[str, tuple[int, bytes]]) -> ActionError:
    detail = "; ".join(f"{a}: {c} {_text(r)}" for a, (c, r) in recipients.items())
    output = {"refused": {a: f"{c} {_text(r)}" for a, (c, r) in recipients.items()}}
    if any(400 <= code < 500 for code, _ in recipients.values()):
        return TransientActionError(f"every recipient was refused: {detail}", output=output)
    return PermanentActionError(f"every recipient was refused: {detail}", output=output)
