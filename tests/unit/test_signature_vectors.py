"""Provider signatures against the known-answer vectors in the providers' own docs
(GitHub, Slack), checked by the verify functions directly."""

from __future__ import annotations

from engine.ingress.providers import verify_github, verify_slack
from engine.ingress.schemes import IncomingRequest
from rules.schema import VerifySpec


def test_github_documented_vector() -> None:
    # docs.github.com "Validating webhook deliveries": secret "It's a Secret to Everybody",
    # payload "Hello, World!"
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    req = IncomingRequest("POST", "http://x/hooks/gh", {"x-hub-signature-256": sig}, {},
                          b"Hello, World!")
    verify_github(VerifySpec(scheme="github", secret="S"), req, "It's a Secret to Everybody")


def test_slack_documented_vector() -> None:
    # api.slack.com "Verifying requests from Slack": the example request, with the
    # timestamp check widened to accept the 2018 timestamp.
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
            b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
            b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
            b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    headers = {"x-slack-request-timestamp": "1531420618",
               "x-slack-signature":
               "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"}
    req = IncomingRequest("POST", "http://x/hooks/slack", headers, {}, body,
                          "application/x-www-form-urlencoded")
    # built without validation: rules may widen the tolerance to a week at most
    spec = VerifySpec.model_construct(scheme="slack", secret="S", tolerance_s=10**10)
    verify_slack(spec, req, "8f742231b10e8888abcd99yyyzzz85a5")
