"""Ingress signature bugs of issue 13 (items 3-7), through POST /hooks, each signed with
the provider's own SDK:

3. ``tolerance_s`` is the one timestamp check of every timed scheme (``standard`` too:
   its library's fixed 5-minute window is not applied on top); ``tolerance_s: 0`` means
   "the timestamp's age is not checked" (it is still signed).
4. timestamp headers are ASCII digits only: ``²`` is a 401 with the reason, never a 500.
5. Twilio's HMAC-SHA256 signatures (X-Twilio-Webhooks-Signature-Settings) are accepted
   exactly when the twilio SDK's RequestValidator.validate() accepts them.
6. a Standard Webhooks signature list passes with any valid v1 entry, whatever else it
   holds.
7. a GitHub hook set to application/x-www-form-urlencoded gives the same event body as
   one set to application/json.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import pytest
import stripe
from slack_sdk.signature import SignatureVerifier
from sqlmodel import Session, select
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator

from engine.store.models import Event
from engine.store.queries import get_event
from engine.store.rule_files import apply_paths
from tests.integration.test_signatures import SECRETS, providers  # noqa: F401 (fixture)

BODY = json.dumps({"id": "evt_13", "type": "invoice.paid", "event_id": "Ev13"}).encode()
STD = SECRETS["STD_SECRET"]

TOLERANT = """
sources:
  - {slug: std600, verify: {scheme: standard, secret: STD_SECRET, tolerance_s: 600}}
  - {slug: std0, verify: {scheme: standard, secret: STD_SECRET, tolerance_s: 0}}
  - {slug: stripe0, verify: {scheme: stripe, secret: STRIPE_WHSEC, tolerance_s: 0}}
  - {slug: slack0, verify: {scheme: slack, secret: SLACK_SIGNING, tolerance_s: 0}}
  - {slug: stripe600, verify: {scheme: stripe, secret: STRIPE_WHSEC, tolerance_s: 600}}
  - {slug: slack600, verify: {scheme: slack, secret: SLACK_SIGNING, tolerance_s: 600}}
"""


@pytest.fixture
def tolerant(providers, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    f = tmp_path / "tolerant.yaml"
    f.write_text(TOLERANT)
    apply_paths(providers.catalog, [f])
    return providers


def stored(rt) -> list[Event]:  # type: ignore[no-untyped-def]
    with Session(rt.db) as s:
        return list(s.exec(select(Event)).all())


def std_headers(body: bytes, ts: int | str, msg_id: str = "msg_13", secret: str = STD) -> dict:
    sig = Webhook(secret).sign(msg_id, datetime.fromtimestamp(int(ts), UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def stripe_headers(body: bytes, ts: int | str) -> dict:
    # the SDK signs f"{t}.{body}": any text can be given as the timestamp
    return {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
        body.decode(), SECRETS["STRIPE_WHSEC"], ts)}  # type: ignore[arg-type]


def slack_headers(body: bytes, ts: int | str) -> dict:
    sig = SignatureVerifier(SECRETS["SLACK_SIGNING"]).generate_signature(
        timestamp=str(ts), body=body)
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig}


SIGN = {"std": std_headers, "stripe": stripe_headers, "slack": slack_headers}


def post(client, slug: str, headers: dict, body: bytes = BODY,  # type: ignore[no-untyped-def]
         ctype: str = "application/json"):
    return client.post(f"/hooks/{slug}", data=body, headers=headers, content_type=ctype)


# -- item 3: one timestamp check, with the configured tolerance ---------------------------
def event_body(n: object) -> bytes:
    """A new event each time (its own Stripe id and Slack event_id: not a duplicate)."""
    return json.dumps({"id": f"evt_{n}", "type": "invoice.paid", "event_id": f"Ev{n}"}).encode()


def signed(scheme: str, body: bytes, ts: int | str) -> dict:
    if scheme == "std":  # its own message id per body (the dedup key)
        return std_headers(body, ts, msg_id="msg_" + hashlib.sha1(body).hexdigest()[:12])
    return SIGN[scheme](body, ts)


@pytest.mark.parametrize("scheme", ["std", "stripe", "slack"])
def test_a_tolerance_above_300_s_is_honoured(tolerant, client, scheme) -> None:  # type: ignore[no-untyped-def]
    """400 s old with tolerance_s: 600 passes (the standardwebhooks library used to refuse
    it with its own 5-minute window: "Message timestamp too old")."""
    now = int(time.time())
    for offset in (-400, 400):
        body = event_body(offset)
        resp = post(client, f"{scheme}600", signed(scheme, body, now + offset), body)
        assert resp.status_code == 202, (offset, resp.get_json())
    for offset, word in ((-700, " s old"), (700, " s in the future")):
        body = event_body(offset)
        resp = post(client, f"{scheme}600", signed(scheme, body, now + offset), body)
        assert resp.status_code == 401
        msg = resp.get_json()["message"]
        assert word in msg and "tolerance 600 s" in msg, msg
    assert len(stored(tolerant)) == 2


@pytest.mark.parametrize("scheme", ["std", "stripe", "slack"])
def test_the_default_tolerance_is_still_300_s(tolerant, client, scheme) -> None:  # type: ignore[no-untyped-def]
    resp = post(client, scheme, SIGN[scheme](BODY, int(time.time()) - 301))
    assert resp.status_code == 401 and "tolerance 300 s" in resp.get_json()["message"]
    assert post(client, scheme, SIGN[scheme](BODY, int(time.time()) - 250)).status_code == 202


@pytest.mark.parametrize("scheme", ["std", "stripe", "slack"])
def test_tolerance_0_means_the_age_is_not_checked(tolerant, client, scheme) -> None:  # type: ignore[no-untyped-def]
    """tolerance_s: 0 used to become 300 s; it now turns the age check off (a three-day-old
    and a future message pass). The timestamp is still signed: a changed one is refused."""
    now = int(time.time())
    for offset in (-3 * 86_400, 86_400):
        body = event_body(offset)
        headers = signed(scheme, body, now + offset)
        resp = post(client, f"{scheme}0", headers, body)
        assert resp.status_code == 202, resp.get_json()
    forged = SIGN[scheme](BODY, now - 3 * 86_400)
    for k in forged:  # the same signature with a fresh timestamp
        if k in ("webhook-timestamp", "X-Slack-Request-Timestamp"):
            forged[k] = str(now)
        elif k == "Stripe-Signature":
            forged[k] = forged[k].replace(f"t={now - 3 * 86_400}", f"t={now}")
    resp = post(client, f"{scheme}0", forged)
    assert resp.status_code == 401 and "does not match" in resp.get_json()["message"]


def test_tolerance_0_with_a_timestamp_past_year_9999_is_a_401(tolerant, client) -> None:  # type: ignore[no-untyped-def]
    ts = "999999999999"  # 12 digits: year 33658
    mac = hmac.new(base64.b64decode(STD.removeprefix("whsec_")),
                   f"msg_far.{ts}.".encode() + BODY, hashlib.sha256).digest()
    resp = post(client, "std0", {"webhook-id": "msg_far", "webhook-timestamp": ts,
                                 "webhook-signature": "v1," + base64.b64encode(mac).decode()})
    assert resp.status_code == 401 and "out of range" in resp.get_json()["message"]


# -- item 4: timestamps are ASCII digits ----------------------------------------------------
NOT_TIMESTAMPS = ["²", "¹⁷⁰⁰⁰⁰⁰⁰⁰⁰", "١٧٠٠٠٠٠٠٠٠", "１７００００００００", "1e9", "-5", "0x10",
                  "17000000.5", "1" * 13]


@pytest.mark.parametrize("value", NOT_TIMESTAMPS)
@pytest.mark.parametrize("scheme", ["std", "stripe", "slack"])
def test_a_timestamp_that_is_not_ascii_digits_is_a_clear_401(tolerant, client, scheme,
                                                              value) -> None:  # type: ignore[no-untyped-def]
    """``webhook-timestamp: ²`` was a 500 (str.isdigit() is true for "²", int() fails),
    before any signature check; now 401 naming the header, for every timed scheme --
    even when the sender signed that very text."""
    if scheme == "std":
        headers = std_headers(BODY, int(time.time()))
        headers["webhook-timestamp"] = value
    else:
        headers = SIGN[scheme](BODY, value)
    resp = post(client, scheme, headers)
    assert resp.status_code == 401, resp.get_data(as_text=True)
    msg = resp.get_json()["message"]
    assert "is not a Unix timestamp (ASCII digits)" in msg
    assert {"std": "webhook-timestamp", "stripe": "Stripe-Signature timestamp",
            "slack": "X-Slack-Request-Timestamp"}[scheme] in msg
    assert stored(tolerant) == []


def raw_post(base: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple:
    """A request with header bytes as given (latin-1 on the wire, as any client may send)."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.putrequest("POST", path)
    for k, v in headers:
        conn.putheader(k, v)
    conn.endheaders(body)
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def test_a_non_ascii_timestamp_over_real_http_is_a_401(tolerant, live_server) -> None:  # type: ignore[no-untyped-def]
    headers = std_headers(BODY, int(time.time()))
    wire = [(k.encode(), v.encode()) for k, v in headers.items() if k != "webhook-timestamp"]
    wire += [(b"webhook-timestamp", "²".encode("latin-1")),
             (b"Content-Type", b"application/json"),
             (b"Content-Length", str(len(BODY)).encode())]
    status, body = raw_post(live_server, "/hooks/std", wire, BODY)
    assert status == 401, body
    assert b"not a Unix timestamp" in body


# -- item 5: Twilio HMAC-SHA256 -------------------------------------------------------------
TW = SECRETS["TWILIO_TOKEN"]
SMS = {"MessageSid": "SM5f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99", "From": "+15551234567",
       "To": "+15557654321", "Body": "Hello — straße ✓", "NumMedia": "0"}
SETTINGS = "X-Twilio-Webhooks-Signature-Settings"


def twilio_post(client, base: str, path: str, body: bytes, headers: dict,  # type: ignore[no-untyped-def]
                ctype: str = "application/x-www-form-urlencoded"):
    return client.post(path, data=body, headers=headers, content_type=ctype, base_url=base)


@pytest.mark.parametrize("algorithm", ["HMAC_SHA256", "hmac_sha256"])
def test_twilio_hmac_sha256_is_accepted(providers, client, algorithm) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = "http://localhost/hooks/tw"
    v = RequestValidator(TW)
    sig = v.compute_signature(url, SMS, algorithm=algorithm)
    settings = f"key=webhooks_sharedkey_0123,algorithm={algorithm}"
    assert v.validate(url, SMS, sig, algorithm=algorithm)  # what the SDK accepts
    resp = twilio_post(client, "http://localhost", "/hooks/tw", urlencode(SMS).encode(),
                       {"X-Twilio-Signature": sig, SETTINGS: settings})
    assert resp.status_code == 202, resp.get_json()
    [ev] = stored(providers)
    assert ev.body["Body"] == "Hello — straße ✓"


def test_twilio_algorithm_must_match_the_settings_header(providers, client) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = "http://localhost/hooks/tw"
    body = urlencode(SMS).encode()
    v = RequestValidator(TW)
    sha1 = v.compute_signature(url, SMS)
    sha256 = v.compute_signature(url, SMS, algorithm="HMAC_SHA256")
    for sig, settings in ((sha1, "key=k,algorithm=HMAC_SHA256"), (sha256, None)):
        headers = {"X-Twilio-Signature": sig, **({SETTINGS: settings} if settings else {})}
        resp = twilio_post(client, "http://localhost", "/hooks/tw", body, headers)
        assert resp.status_code == 401 and "does not match" in resp.get_json()["message"]
    resp = twilio_post(client, "http://localhost", "/hooks/tw", body,
                       {"X-Twilio-Signature": sha256, SETTINGS: "key=k,algorithm=HMAC_MD5"})
    assert resp.status_code == 401
    assert "unsupported algorithm 'HMAC_MD5'" in resp.get_json()["message"]
    assert stored(providers) == []


# (the URL the request reaches, the URL Twilio signed, the form parameters)
TWILIO_CASES = [
    ("http://localhost/hooks/tw", "http://localhost/hooks/tw", SMS),
    ("http://localhost/hooks/tw", "http://localhost:80/hooks/tw", SMS),
    ("http://localhost:8080/hooks/tw", "http://localhost:8080/hooks/tw", SMS),
    ("http://localhost:8080/hooks/tw", "http://localhost/hooks/tw", SMS),  # SDK drops any port
    ("http://localhost:8080/hooks/tw", "http://localhost:80/hooks/tw", SMS),
    ("https://localhost/hooks/tw", "https://localhost:443/hooks/tw", SMS),
    ("http://localhost/hooks/tw?a=1", "http://localhost/hooks/tw?a=1", SMS),
    ("http://localhost/hooks/tw?a=1", "http://localhost/hooks/tw", SMS),
    ("http://localhost/hooks/tw", "http://localhost/hooks/tw", {**SMS, "Body": "other"}),
]


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256"])
@pytest.mark.parametrize(("reached", "signed", "params"), TWILIO_CASES)
def test_twilio_accepts_what_the_sdk_validate_accepts(providers, client, algorithm, reached,  # noqa: F811
                                                       signed, params) -> None:  # type: ignore[no-untyped-def]
    v = RequestValidator(TW)
    sig = v.compute_signature(signed, params, algorithm=algorithm)
    sdk_says = v.validate(reached, SMS, sig, algorithm=algorithm)
    u = urlsplit(reached)
    path = u.path + (f"?{u.query}" if u.query else "")
    resp = twilio_post(client, f"{u.scheme}://{u.netloc}", path, urlencode(SMS).encode(),
                       {"X-Twilio-Signature": sig, SETTINGS: f"key=k,algorithm={algorithm}"})
    assert resp.status_code == (202 if sdk_says else 401), (sdk_says, resp.get_json())


def test_twilio_repeated_parameters_are_signed_as_the_sdk_signs_them(providers, client) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The SDK signs each name's *distinct* values, sorted (a Flask/Werkzeug MultiDict)."""
    from werkzeug.datastructures import MultiDict

    pairs = [("To", "+15557654321"), ("MediaUrl", "https://x/b"), ("MediaUrl", "https://x/a"),
             ("MediaUrl", "https://x/a"), ("MessageSid", "SM1")]
    url = "http://localhost/hooks/tw"
    v = RequestValidator(TW)
    for algorithm in ("HMAC_SHA1", "HMAC_SHA256"):
        sig = v.compute_signature(url, MultiDict(pairs), algorithm=algorithm)
        assert v.validate(url, MultiDict(pairs), sig, algorithm=algorithm)
        resp = twilio_post(client, "http://localhost", "/hooks/tw", urlencode(pairs).encode(),
                           {"X-Twilio-Signature": sig, SETTINGS: f"algorithm={algorithm}",
                            "I-Twilio-Idempotency-Token": algorithm})
        assert resp.status_code == 202, resp.get_json()


def test_twilio_json_body_with_sha256(providers, client) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    body = json.dumps({"CallSid": "CA1", "CallStatus": "completed"}).encode()
    digest = hashlib.sha256(body).hexdigest()
    url = f"http://localhost/hooks/tw?bodySHA256={digest}"
    v = RequestValidator(TW)
    sig = v.compute_signature(url, {}, algorithm="HMAC_SHA256")
    assert v.validate(url, body.decode(), sig, algorithm="HMAC_SHA256")
    resp = twilio_post(client, "http://localhost", f"/hooks/tw?bodySHA256={digest}", body,
                       {"X-Twilio-Signature": sig, SETTINGS: "key=k,algorithm=HMAC_SHA256"},
                       "application/json")
    assert resp.status_code == 202, resp.get_json()


# -- item 6: Standard Webhooks signature lists ---------------------------------------------
@pytest.mark.parametrize("template", [
    "junk {valid}",
    "{valid} junk",
    "v2,AAAA {valid}",
    "v1a,{sig} {valid}",
    "v1,!!!not-base64 {valid}",
    "v1,QUJD= {valid}",  # bad padding
    "v1,{other} {valid}",  # another key's signature (rotation)
    "v1,{sig}",
])
def test_any_valid_v1_entry_in_the_list_passes(providers, client, template) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    headers = std_headers(BODY, int(time.time()))
    valid = headers["webhook-signature"]
    other_key = "whsec_" + base64.b64encode(b"the-old-key-the-old-key-the-old!").decode()
    other = std_headers(BODY, headers["webhook-timestamp"], secret=other_key)
    headers["webhook-signature"] = template.format(
        valid=valid, sig=valid.partition(",")[2],
        other=other["webhook-signature"].partition(",")[2])
    resp = post(client, "std", headers)
    assert resp.status_code == 202, resp.get_json()


@pytest.mark.parametrize(("value", "reason"), [
    ("junk", "has no v1,<base64> signature"),
    ("v2,AAAA v1a,BBBB", "has no v1,<base64> signature"),
    ("v1,AAAA", "does not match the body"),
    ("v1,AAAA junk v2,{sig}", "does not match the body"),
])
def test_a_list_without_a_valid_v1_entry_is_refused(providers, client, value, reason) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    headers = std_headers(BODY, int(time.time()))
    headers["webhook-signature"] = value.format(
        sig=headers["webhook-signature"].partition(",")[2])
    resp = post(client, "std", headers)
    assert resp.status_code == 401
    assert reason in resp.get_json()["message"]
    assert stored(providers) == []


# -- item 7: GitHub's form content type ------------------------------------------------------
GH_RULES = """
sources:
  - {slug: gh-open, verify: {scheme: none}}
rules:
  - name: gh-main
    source: gh
    when: {all: [{path: $.body.ref, op: eq, value: refs/heads/main},
                 {path: $.body.repository.full_name, op: eq, value: octocat/Hello-World}]}
    actions: [{id: note, type: state, key: "push-{{ body.after }}", set: {ok: true}}]
"""
PUSH = {"ref": "refs/heads/main", "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "repository": {"id": 1296269, "full_name": "octocat/Hello-World"},
        "pusher": {"name": "octocat"}, "head_commit": {"message": "a & b = c?"}}


def gh_headers(body: bytes, delivery: str, secret: str = SECRETS["GH_SECRET"]) -> dict:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery}


def test_github_form_hook_gives_the_same_body_as_a_json_hook(providers, client, work,  # noqa: F811
                                                             tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "gh.yaml"
    f.write_text(GH_RULES)
    apply_paths(providers.catalog, [f])
    as_json = json.dumps(PUSH).encode()
    as_form = urlencode({"payload": json.dumps(PUSH)}).encode()  # GitHub's form setting
    ids = []
    for n, (body, ctype) in enumerate(((as_json, "application/json"),
                                       (as_form, "application/x-www-form-urlencoded"))):
        resp = post(client, "gh", gh_headers(body, f"d-{n}"), body, ctype)
        assert resp.status_code == 202, resp.get_json()
        ids.append(resp.get_json()["event_id"])
    work()
    events = [get_event(providers.db, i) for i in ids]
    assert events[0]["event"]["body"] == events[1]["event"]["body"] == PUSH  # not .payload
    for ev in events:
        assert [ex["rule_name"] for ex in ev["executions"]] == ["gh-main"], ev["executions"]
    assert events[1]["event"]["raw_body"] == as_form.decode()  # the raw form body is kept as sent

    # the signature is over the raw form body: re-encoding the same JSON does not pass
    tampered = urlencode({"payload": json.dumps(PUSH, indent=1)}).encode()
    resp = post(client, "gh", gh_headers(as_form, "d-t"), tampered,
                "application/x-www-form-urlencoded")
    assert resp.status_code == 401
    # an unverified source receiving GitHub's hooks (X-GitHub-Event) unwraps it too
    resp = post(client, "gh-open", {"X-GitHub-Event": "push"}, as_form,
                "application/x-www-form-urlencoded")
    assert get_event(providers.db, resp.get_json()["event_id"])["event"]["body"] == PUSH


def test_other_forms_keep_their_payload_field(providers, client) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Slack's interactive payload= stays $.body.payload (its documented place); a GitHub
    form with more than the payload field is not unwrapped."""
    slack = urlencode({"payload": json.dumps({"type": "block_actions"})}).encode()
    ts = int(time.time())
    resp = post(client, "slack", slack_headers(slack, ts), slack,
                "application/x-www-form-urlencoded")
    ev = get_event(providers.db, resp.get_json()["event_id"])
    assert ev["event"]["body"] == {"payload": {"type": "block_actions"}}
    extra = urlencode({"payload": json.dumps(PUSH), "x": "1"}).encode()
    resp = post(client, "gh", gh_headers(extra, "d-x"), extra,
                "application/x-www-form-urlencoded")
    assert get_event(providers.db, resp.get_json()["event_id"])["event"]["body"] == {
        "payload": PUSH, "x": "1"}


@pytest.mark.parametrize("length", ["²", "³²", "1e3"])
def test_a_content_length_that_is_not_ascii_digits_is_no_500(tolerant, live_server,
                                                             length) -> None:  # type: ignore[no-untyped-def]
    """``Content-Length: ²`` was a 500 (the size check used str.isdigit() then int());
    it is now read as no length at all, as ``Content-Length: abc`` is: the request is
    refused by its source's verification (the body read is empty), never a 500."""
    headers = std_headers(BODY, int(time.time()))
    wire = [(k.encode(), v.encode()) for k, v in headers.items()]
    wire += [(b"Content-Type", b"application/json"), (b"Content-Length", length.encode("latin-1"))]
    status, body = raw_post(live_server, "/hooks/std", wire, BODY)
    assert status == 401, body
    assert stored(tolerant) == []


@pytest.mark.slow
def test_non_ascii_digits_under_gunicorn_are_401s(tmp_path, redis_url) -> None:  # type: ignore[no-untyped-def]
    """The issue's reproduction: ``hookwise web --server gunicorn``, then
    ``webhook-timestamp: ²`` (and ``Content-Length: ²``) -- a 401 saying why, not a 500."""
    import os
    import signal
    import subprocess
    import sys

    from tests.servers import free_port
    from tests.system.test_serve import clean_env, hookwise, wait_ok

    env = {**clean_env(tmp_path), "HOOKWISE_DATA_DIR": str(tmp_path / "data"),
           "HOOKWISE_REDIS_URL": redis_url, "HOOKWISE_SECRET_KEY": "issue-13-key",
           "HOOKWISE_QUEUE": f"issue13-{os.getpid()}"}
    (tmp_path / "s.yaml").write_text(
        "sources: [{slug: std, verify: {scheme: standard, secret: STD_SECRET}}]")
    for args in (("secrets", "set", "STD_SECRET", "--value", STD), ("apply", "s.yaml")):
        done = hookwise(*args, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "web", "--server", "gunicorn", "--port", str(port),
         "--workers", "1", "--threads", "2", "--no-migrate"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ok(proc, f"{base}/healthz", "gunicorn did not start")
        headers = std_headers(BODY, int(time.time()))
        good = [(k.encode(), v.encode()) for k, v in headers.items()]
        common = [(b"Content-Type", b"application/json")]
        length = [(b"Content-Length", str(len(BODY)).encode())]
        stamp = [(k, v) for k, v in good if k != b"webhook-timestamp"]
        status, body = raw_post(base, "/hooks/std", stamp + common + length
                                + [(b"webhook-timestamp", "²".encode("latin-1"))], BODY)
        assert status == 401 and b"not a Unix timestamp (ASCII digits)" in body, body
        status, body = raw_post(base, "/hooks/std", good + common
                                + [(b"Content-Length", "²".encode("latin-1"))], BODY)
        assert status != 500 and 400 <= status < 500, (status, body)
        status, body = raw_post(base, "/hooks/std", good + common + length, BODY)
        assert status == 202, body  # the same request, well-formed, is accepted
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
